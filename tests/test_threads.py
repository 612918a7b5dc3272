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
