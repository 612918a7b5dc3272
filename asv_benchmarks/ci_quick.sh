#!/usr/bin/env bash
# CI: run the asv suites once each (--quick) in the current environment, so that a broken
# benchmark fails CI. Called from .ci/run inside its virtualenv, from any folder:
#
#     bash asv_benchmarks/ci_quick.sh            # the CI selection below
#     bash asv_benchmarks/ci_quick.sh -b ops     # any extra asv arguments replace the selection
#
# The selection keeps the run to a few minutes on 2 cores: every case of ops, memory_pool,
# import_time and models on AirPassengers (torch side included when torch is installed; the
# models of SLOW_MODELS in benchmarks/models.py only in a full run), the M4
# Hourly workload (ModelFitM4, ModelPredictM4) for MLP on the ndiv side only (~180 steps of 1024
# windows; every model on both sides costs hours: full `asv run`), and the kernels suite on
# its ndiv backend at its smallest shapes (its composed and torch sides and its large shapes
# cost minutes; they run in full `asv run` / `asv continuous`). Figures from --quick are one
# sample each: they prove the benchmark runs, not its speed.
#
# Fails (exit 1) when a suite does not import or a signature is wrong (asv check), when any
# benchmark or parameter combination failed or timed out, or when nothing ran. asv itself exits 2 on a failed benchmark and 1 on a suite that does
# not import; the log is also checked for "failed" status lines in case a future asv does not.
set -euo pipefail
cd "$(dirname "$0")/.."

python -c "import asv" 2>/dev/null || python -m pip install "asv>=0.6"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" NUMBA_NUM_THREADS="${NUMBA_NUM_THREADS:-2}"

if [ "$#" -gt 0 ]; then
    SELECT=("$@")
else
    SELECT=(
        -b '^(ops|memory_pool|import_time)\.'
        -b "^models\.(?!\w+M4\.)\w+\.\w+\('MLP', "
        -b "^models\.(?!\w+M4\.)\w+\.\w+\('(?!(VanillaTransformer|Informer|Autoformer|FEDformer|TFT|DeepAR)')\w+', 'ndiv'\)"
        -b "^models\.\w+M4\.\w+\('MLP', 'ndiv'\)"
        -b "^kernels\.(LSTM|GRU|RNN)\.time_fwd_bwd\('ndiv', 1, 24, 1\)"
        -b "^kernels\.Conv1d\.time_fwd_bwd\('ndiv', 96, 1\)"
        -b "^kernels\.Attention\.time_fwd_bwd\('ndiv', 42, 16, (False|True)\)"
        -b "^kernels\.(Rows|AddLayerNorm)\..*\('ndiv'"
        -b "^kernels\.(BatchNorm|LinearReLU)\..*\('ndiv'"
        -b "^kernels\.LinearBF16\..*\('ndiv(_bf16)?', '1024x96x1024'\)"
        -b '^kernels\.AttentionMemory\.'
    )
fi

asv machine --yes >/dev/null
asv check --python=same     # every suite imports and every benchmark's signature fits its params
LOG="$(mktemp)"
set +e
asv run --python=same --quick --show-stderr --set-commit-hash="$(git rev-parse HEAD)" "${SELECT[@]}" 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
set -e

# status lines: "[ 12.50%] ··· ops.Add.time_add      ok" / "failed" / "1/4 failed"
n_run=$(grep -cE '^\[ *[0-9.]+%\] ··· [A-Za-z_][A-Za-z0-9_.]* +(ok|failed|[0-9]+/[0-9]+ failed)$' "$LOG" || true)
n_failed=$(grep -cE '^\[ *[0-9.]+%\] ··· [A-Za-z_][A-Za-z0-9_.]* +([0-9]+/[0-9]+ )?failed$' "$LOG" || true)
rm -f "$LOG"
echo "asv quick run: exit status $rc, $n_run benchmarks run, $n_failed failed"
if [ "$rc" -ne 0 ] || [ "$n_failed" -ne 0 ] || [ "$n_run" -eq 0 ]; then
    echo "asv benchmarks FAILED (see above)" >&2
    exit 1
fi
python asv_benchmarks/ratio_table.py || true   # one-sample figures: informative only
