"""GetItem's gather along one axis in runs of consecutive positions (pad's reflect, replicate and
circular modes): the forward equals NumPy's x[index], the backward equals add.at (repeats summed,
nan and inf carried), and pad's gradients pass gradcheck."""
import numpy as np
import pytest

import ndiv
from ndiv.autograd.ops.shape import GetItem, _runs
from ndiv.nn import functional as F

S = slice(None)
INDEXES = {
    "circular": (S, S, np.array([4, 5, 0, 1, 2, 3, 4, 5, 0, 1])),
    "reflect": (S, S, np.array([2, 1, 0, 1, 2, 3, 4, 5, 4, 3])),
    "replicate": (S, np.array([0, 0, 0, 1, 2, 3, 4, 4])),
    "negative": (np.array([-1, 0, 1, -1, 2]),),
    "repeats": np.array([1, 1, 1, 2]),
    "many_runs": (S, S, np.array([5, 3, 1, 4, 2, 0] * 3)),        # 18 runs: the add.at route
}


@pytest.mark.parametrize("name", list(INDEXES))
def test_take_along_one_axis_matches_numpy_and_add_at(name):
    index = INDEXES[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 6))
    f = GetItem()
    y = f.forward(x, index, True)
    np.testing.assert_array_equal(y, x[index])
    assert (f.runs is None) == (name == "many_runs")
    gy = rng.standard_normal(y.shape)
    gy.reshape(-1)[:3] = [np.nan, np.inf, -np.inf]
    want = np.zeros_like(x)
    np.add.at(want, index, gy)
    np.testing.assert_array_equal(f.backward(gy), want)


def test_runs_refuse_what_is_not_a_take_along_one_axis():
    shape = (3, 5, 6)
    assert _runs((np.array([0, 1]), np.array([1, 2])), shape) is None         # two index arrays
    assert _runs((S, np.array([[0, 1]])), shape) is None                       # a 2-D index
    assert _runs((S, np.array([True, False, True, False, True])), shape) is None   # a mask
    assert _runs((slice(1, 3), np.array([0, 1])), shape) is None               # a partial slice
    assert _runs((S, np.array([], int)), shape) is None
    assert _runs((S, np.array([0, 5])), shape) is None                         # out of range: x[index] raises
    with pytest.raises(IndexError, match="index 5 is out of bounds for axis 1 with size 5"):
        GetItem().forward(np.zeros(shape), (S, np.array([0, 5])), True)


@pytest.mark.parametrize("mode", ["circular", "reflect", "replicate"])
def test_pad_modes_gradcheck(mode):
    x = ndiv.tensor(np.random.default_rng(1).standard_normal((2, 3, 7)), requires_grad=True)
    assert ndiv.autograd.gradcheck(lambda t: F.pad(t, (3, 2), mode=mode), [x])
