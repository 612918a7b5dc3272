"""ndiv.autograd: the Tensor, its tape, the primitive Functions, gradcheck and no_grad."""
from ndiv.autograd.tensor import Tensor, backward  # noqa: F401
from ndiv.autograd import methods as _methods  # noqa: F401  (attaches the Tensor methods)
from ndiv.autograd.function import Function  # noqa: F401
from ndiv.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled  # noqa: F401
from ndiv.autograd.gradcheck import GradcheckError, gradcheck  # noqa: F401
