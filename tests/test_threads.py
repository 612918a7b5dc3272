"""ndiv.set_num_threads: BLAS and Numba threads, like torch.set_num_threads."""
import pytest

import ndiv


def test_set_num_threads_round_trip():
    before = ndiv.get_num_threads()
    try:
        ndiv.set_num_threads(1)
        assert ndiv.get_num_threads() == 1
        import numba
        assert numba.get_num_threads() == 1
    finally:
        ndiv.set_num_threads(max(before, 1))


def test_set_num_threads_rejects_bad_values():
    with pytest.raises(ValueError, match="positive integer"):
        ndiv.set_num_threads(0)


def test_import_makes_idle_openmp_threads_sleep_unless_the_user_chose():
    """ndiv sets OMP_WAIT_POLICY=PASSIVE (spinning OpenMP threads of the Numba kernels took the
    second core from BLAS); a value already in the environment is kept."""
    import os
    import subprocess
    import sys
    code = "import os, ndiv; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PASSIVE"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ACTIVE"
