"""Weight initialisation, in place, with torch.nn.init's names, formulas and defaults.

Every draw comes from ndiv's global generator (`ndiv.manual_seed`), on the CPU, then is copied
into the tensor's array (so it also works for 'cuda' tensors). The values differ from torch's
(another generator); the distributions are the same. Complex tensors draw their real and
imaginary parts apart, as torch: uniform_ puts each part in [a, b), normal_ gives each part
mean `mean` and standard deviation std / sqrt(2) (so E|z - mean(1 + i)|^2 = std^2).
"""
from __future__ import annotations

import math

import numpy as np

from ndiv import device as _device
from ndiv.autograd.tensor import Tensor
from ndiv.random import get_rng


def _fill(tensor: Tensor, values: np.ndarray) -> Tensor:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"init functions expect a Tensor or Parameter, got {type(tensor).__name__}")
    values = np.asarray(values, dtype=tensor.data.dtype).reshape(tensor.shape)
    if _device.is_cuda_array(tensor.data):
        tensor.data[...] = _device.to_device(values, "cuda")
    else:
        tensor.data[...] = values
    return tensor


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The recommended gain for a nonlinearity (torch's table)."""
    linear = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"]
    if nonlinearity in linear or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    if tensor.ndim < 2:
        raise ValueError(
            f"Fan in and fan out can not be computed for tensor with fewer than 2 dimensions (shape {tuple(tensor.shape)})"
        )
    receptive = int(np.prod(tensor.shape[2:])) if tensor.ndim > 2 else 1
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _calculate_correct_fan(tensor: Tensor, mode: str) -> int:
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _is_complex(tensor) -> bool:
    return isinstance(tensor, Tensor) and tensor.data.dtype.kind == "c"


def _real_only(tensor: Tensor, name: str) -> None:
    if _is_complex(tensor):
        raise TypeError(f"{name}: not defined for complex tensors (got dtype {tensor.dtype}), as in "
                        "torch; initialise the real and imaginary parts apart")


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    values = get_rng().uniform(a, b, size=tensor.shape)
    if _is_complex(tensor):
        values = values + 1j * get_rng().uniform(a, b, size=tensor.shape)
    return _fill(tensor, values)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    if _is_complex(tensor):
        s = std / math.sqrt(2.0)
        return _fill(tensor, get_rng().normal(mean, s, size=tensor.shape)
                     + 1j * get_rng().normal(mean, s, size=tensor.shape))
    return _fill(tensor, get_rng().normal(mean, std, size=tensor.shape))


def constant_(tensor: Tensor, val: float) -> Tensor:
    tensor.data[...] = val
    return tensor


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1.0)


def eye_(tensor: Tensor) -> Tensor:
    if tensor.ndim != 2:
        raise ValueError(f"eye_ needs a 2-D tensor, got shape {tuple(tensor.shape)}")
    return _fill(tensor, np.eye(*tensor.shape))


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    a = gain * math.sqrt(6.0 / float(fan_in + fan_out))
    return uniform_(tensor, -a, a)


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)))


def kaiming_uniform_(tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Tensor:
    if 0 in tensor.shape:
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    bound = math.sqrt(3.0) * calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Tensor:
    if 0 in tensor.shape:
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan))


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0) -> Tensor:
    """Normal(mean, std) truncated to [a, b] (absolute bounds, as in torch), by the inverse CDF."""
    _real_only(tensor, "trunc_normal_")
    from scipy.special import erfinv

    def norm_cdf(x):
        return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0

    lo, hi = norm_cdf((a - mean) / std), norm_cdf((b - mean) / std)
    u = get_rng().uniform(2 * lo - 1, 2 * hi - 1, size=tensor.shape)
    values = np.clip(erfinv(u) * std * math.sqrt(2.0) + mean, a, b)
    return _fill(tensor, values)


def orthogonal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """A (semi-)orthogonal matrix from the QR of a normal draw, signs fixed as in torch."""
    _real_only(tensor, "orthogonal_")
    if tensor.ndim < 2:
        raise ValueError(f"Only tensors with 2 or more dimensions are supported, got shape {tuple(tensor.shape)}")
    if tensor.size == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.size // rows
    flat = get_rng().normal(0.0, 1.0, size=(rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill(tensor, gain * q)


def sparse_(tensor: Tensor, sparsity: float, std: float = 0.01) -> Tensor:
    if tensor.ndim != 2:
        raise ValueError(f"Only tensors with 2 dimensions are supported, got shape {tuple(tensor.shape)}")
    rows, cols = tensor.shape
    values = get_rng().normal(0.0, std, size=(rows, cols))
    n_zero = int(math.ceil(sparsity * rows))
    for c in range(cols):
        values[get_rng().permutation(rows)[:n_zero], c] = 0
    return _fill(tensor, values)
