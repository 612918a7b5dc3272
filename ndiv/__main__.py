"""`python -m ndiv`: a short tour of the tensor and its gradients (the CLI comes with `ndiv forecast`)."""
import numpy as np

import ndiv


def main() -> None:
    ndiv.manual_seed(0)
    x = ndiv.tensor(np.linspace(-2, 2, 5), requires_grad=True)
    y = (x.tanh() * x).sum()
    y.backward()
    print(f"x            = {x.numpy()}")
    print(f"y = sum(tanh(x) * x) = {y.item():.6f}")
    print(f"dy/dx        = {x.grad}")
    print(f"analytic     = {np.tanh(x.data) + x.data * (1 - np.tanh(x.data) ** 2)}")
    ndiv.autograd.gradcheck(lambda t: (t.tanh() * t).sum(), [x])
    print("gradcheck: analytic and numeric gradients agree")


if __name__ == "__main__":
    main()
