#!/usr/bin/env bash
# compute-sanitizer over orchard-core's CUDA kernels: sanitize_ops.py (every op family, three
# dtypes) under memcheck, then racecheck. Exits non-zero when a tool reports an error
# (--error-exitcode 1) or a case fails (the script's exit status, which the sanitizer passes on).
#
#   packages/orchard-core/tests/cuda/run_sanitizer.sh
#
# Environment:
#   PYTHON     the interpreter with orchard-core (CUDA build) installed (python3)
#   SANITIZER  the compute-sanitizer binary (compute-sanitizer, else $CUDA_HOME/bin/...)
#   TOOLS      the tools to run, in order (memcheck racecheck)
#   ORCHARD_SANITIZER_KERNELS
#              regex over the mangled kernel names to check (default "orchard": the kernels
#              live in namespace orchard::cuda); empty checks every kernel, cuBLASLt's included
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
kernels="${ORCHARD_SANITIZER_KERNELS-orchard}"
filter=()
if [[ -n "$kernels" ]]; then
  filter=(--kernel-name "regex=$kernels")
fi

status=0
for tool in ${TOOLS:-memcheck racecheck}; do
  echo "== $tool"
  "$sanitizer" --tool "$tool" --error-exitcode 1 "${filter[@]}" "$python" "$here/sanitize_ops.py" || status=1
done
exit $status
