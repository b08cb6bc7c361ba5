#!/usr/bin/env bash
# compute-sanitizer over orchard-flash's CUDA kernels: memcheck on sanitize_grid.py's small grid
# (36 cases), racecheck on its tiny one (12 cases: racecheck is slow). Exits non-zero when a
# tool reports an error (--error-exitcode 1) or the grid finds a mismatch (the script's exit
# status, which compute-sanitizer passes on).
#
#   packages/orchard-flash/tests/cuda/run_sanitizer.sh
#   TOOLS="memcheck racecheck synccheck initcheck" packages/orchard-flash/tests/cuda/run_sanitizer.sh
#
# Environment:
#   PYTHON     the interpreter with orchard-flash (CUDA build) and torch installed (python3)
#   SANITIZER  the compute-sanitizer binary (compute-sanitizer, else $CUDA_HOME/bin/...)
#   TOOLS      the tools to run, in order (memcheck racecheck); tools other than memcheck run
#              the tiny grid
#   GRID       overrides the grid for every tool (tiny, small or full)
#   TIERS      the CUDA kernel tiers to check, each in turn (default: hopper sm80 simt; a tier
#              the GPU lacks falls back to the next one down)
#   ORCHARD_SANITIZER_KERNELS
#              regex over the mangled kernel names to check (default "orchard|flash": the
#              kernels live in namespace orchard::flash::cuda, so their names contain both);
#              set it empty to check every kernel, torch's included (much slower)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
sanitizer="${SANITIZER:-}"
if [[ -z "$sanitizer" ]]; then
  if command -v compute-sanitizer >/dev/null; then
    sanitizer=compute-sanitizer
  else
    sanitizer="${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer"
  fi
fi
kernels="${ORCHARD_SANITIZER_KERNELS-orchard|flash}"
tools="${TOOLS:-memcheck racecheck}"
tiers="${TIERS:-hopper sm80 simt}"

filter=()
if [[ -n "$kernels" ]]; then
  filter=(--kernel-name "regex=$kernels")
fi

# torch's caching allocator hands out pieces of larger blocks: an access past the end of one
# tensor would land in the block and go unreported. (Device memory orchard allocates itself is
# only as well checked as its allocator is plain cudaMalloc.)
export PYTORCH_NO_CUDA_MEMORY_CACHING=1

"$sanitizer" --version | head -n 3
status=0
for tier in $tiers; do
  for tool in $tools; do
    grid="${GRID:-$([[ "$tool" == memcheck ]] && echo small || echo tiny)}"
    echo "== compute-sanitizer --tool $tool, tier $tier, grid $grid, kernels ${kernels:-(all)}"
    if "$sanitizer" --tool "$tool" --error-exitcode 1 ${filter[@]+"${filter[@]}"} \
      "$python" "$here/sanitize_grid.py" --grid "$grid" --tier "$tier"; then
      echo "== $tool ($tier): passed"
    else
      echo "== $tool ($tier): FAILED (exit status $?)"
      status=1
    fi
  done
done
exit "$status"
