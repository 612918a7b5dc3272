#!/usr/bin/env bash
# The one GPU verification of issue 9, for a session whose task has the device machine:
#   run(command="bash tools/gpu_check.sh", timeout_s=540)
# Installs ndiv (no deps: the image has CuPy, numba, numpy, scipy, torch, pytest), then runs, each
# under its own time limit so that the whole stays under ~8 minutes, writing every log to $OUT:
#   1. tests/test_device.py          (device errors, dispatch, every CUDA source compiles; NVRTC here)
#   2. tests/kernels/test_cuda.py    (each kernel vs reference with poisoned outputs, half-precision
#                                     attention, gradcheck on the GPU, nn parity on 'cuda', a train step)
#   3. a small model fit through the Forecaster with device='cuda' (needs the base.py change)
#   4. asv_benchmarks/gpu_bench.py   (the benchmark table, side by side with torch CUDA)
# A failing step does not stop the next; the exit code is the first failure's.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
rc=0
step() {  # step NAME SECONDS CMD...: run CMD with a time limit, log to $OUT/NAME.log
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local r=$?
    echo "== $name: rc=$r in $((SECONDS - t0)) s" | tee -a "$OUT/summary.txt"
    tail -n 25 "$OUT/$name.log"
    [ "$r" -ne 0 ] && [ "$rc" -eq 0 ] && rc=$r
    return 0
}
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; python -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)"; } >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
step install 120 python -m pip install --no-deps --no-build-isolation -e .
export NDIV_CUDA_COMPILE_ALL=1
step test_device 90 python -m pytest -q -p no:cacheprovider -x tests/test_device.py
step test_cuda 210 python -m pytest -q -p no:cacheprovider -rs --durations=10 tests/kernels/test_cuda.py
step forecaster_cuda 60 python - <<'PY'
import time, numpy as np, ndiv
from ndiv.models import NHITS
from ndiv.datasets import load_air_passengers   # the bundled dataset
df = load_air_passengers()
res = {}
for dev in ("cpu", "cuda"):
    fc = ndiv.Forecaster(models=[NHITS(h=12, input_size=24, max_steps=50, random_seed=1, device=dev)], freq="MS")
    t = time.perf_counter(); fc.fit(df); fit_s = time.perf_counter() - t
    res[dev] = fc.predict()
    print(dev, f"fit {fit_s:.2f} s ({50 / fit_s:.1f} steps/s)")
diff = np.abs(np.asarray(res["cpu"]["NHITS"], float) - np.asarray(res["cuda"]["NHITS"], float)).max()
print("max |cpu - cuda| forecast:", diff)
assert diff < 1e-2 * max(1.0, float(np.abs(np.asarray(res["cpu"]["NHITS"], float)).max())), diff
PY
step gpu_bench 150 python asv_benchmarks/gpu_bench.py --out "$OUT/gpu_bench.json"
cat "$OUT/summary.txt"
exit "$rc"
