"""Where a model's training step spends its time, and how far it is from its GEMM floor.

    python tools/profile_model.py MLP --data m4_hourly --steps 20 --threads 1
    python tools/profile_model.py all --data air_passengers      # every model in ndiv.models.MODELS

A training step (as `Forecaster.fit` runs it: sample, forward, loss, backward, optimizer) is
split into
    BLAS GEMMs        every matrix product on raw arrays (`a @ b`, np.matmul/dot/einsum with a
                      contracted index in both operands/tensordot) inside the autograd Functions
                      and the CPU kernels' Python wrappers
    fused kernels     the calls into ndiv.kernels.cpu (less the GEMMs they make from Python)
    other NumPy work  the rest of every Function's forward/backward, and the optimizer step
    data sampling     TrainWindowSampler.sample (windows, scaling, dedupe)
    tape and Python   the remainder: module calls, Tensor creation, the tape walk, the loop
and the GEMM floor: the GEMMs of one step, recorded with their shapes, dtypes and memory layouts,
each timed alone on fresh arrays with the same threads (the best of a few repeats). The ratio
"step = k x floor" compares the uninstrumented step (median over the steps) with that floor.

Instrumentation is applied at run time, here, and undone afterwards: the library's hot paths are
not changed. The GEMMs are found by rewriting the source of the Functions' methods and of the
kernel wrappers (each `a @ b` becomes a timed call); a GEMM made inside a compiled Numba kernel
(np.dot in @njit) is invisible to this tool and counts as kernel time, and raw-array products
outside Functions and kernels (rare: a model's no-grad helper) count where they are called from.
The instrumented run costs ~1 us per wrapped call, so its step is slower than the plain one; its
parts add up to its own step exactly (the remainder is "tape and Python").

--threads T sets OMP/OpenBLAS/MKL/Numba threads before NumPy loads (default 1, the issue's
setting). On a loaded machine the figures are noise: compare runs made under the same load.
"""
from __future__ import annotations

import argparse
import ast
import csv
import gzip
import inspect
import os
import statistics
import sys
import textwrap
import time
import types
from collections import Counter, defaultdict
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.environ.get("NDIV_DATA_DIR", os.path.join(os.path.dirname(ROOT), "shared", "data"))
WORKLOADS = {  # name -> (h, input_size, freq); NeuralForecast's defaults otherwise
    "m4_hourly": (48, 96, 1),
    "air_passengers": (12, 24, "MS"),
}
PARTS = ("gemm", "kernels", "numpy", "optimizer", "sampling", "overhead")
LABELS = {"gemm": "BLAS GEMMs", "kernels": "fused kernels (ndiv.kernels.cpu)", "numpy": "other NumPy work: ops",
          "optimizer": "other NumPy work: optimizer", "sampling": "data sampling",
          "overhead": "tape and Python overhead"}
GEMM_FUNCS = ("matmul", "dot", "einsum", "tensordot", "inner", "vdot")
ARRAY_MODULES = ("np", "xp", "numpy")
HOOK_OP, HOOK_CALL = "_ndiv_profile_matmul", "_ndiv_profile_gemm_call"


# -- data ----------------------------------------------------------------------------------------
def load_data(name: str, n_series: int | None = None):
    """(df as a dict of arrays, h, input_size, freq) of a workload; n_series: the first n only."""
    import numpy as np

    if name not in WORKLOADS:
        raise ValueError(f"--data must be one of {sorted(WORKLOADS)}, got {name!r}")
    h, input_size, freq = WORKLOADS[name]
    if name == "air_passengers":
        from ndiv.datasets import load_air_passengers
        return load_air_passengers(as_pandas=False), h, input_size, freq
    path = os.path.join(DATA_DIR, "m4", "m4_hourly_train.csv.gz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"M4 Hourly not found at {path}; set NDIV_DATA_DIR to the folder holding m4/")
    ids, ds, y = [], [], []
    with gzip.open(path, "rt", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        iu, it, iy = header.index("unique_id"), header.index("ds"), header.index("y")
        seen: list = []
        for row in reader:
            if not seen or seen[-1] != row[iu]:
                if n_series is not None and len(seen) == n_series:
                    break
                seen.append(row[iu])
            ids.append(row[iu])
            ds.append(int(row[it]))
            y.append(float(row[iy]))
    return {"unique_id": np.array(ids), "ds": np.array(ds, dtype=np.int64), "y": np.array(y)}, h, input_size, freq


# -- timing --------------------------------------------------------------------------------------
class _Clock:
    """Exclusive time per part: a wrapped call's time less that of the wrapped calls inside it."""

    def __init__(self):
        self.on = False
        self.recording = False          # record the GEMMs' signatures (one step)
        self.stack: list = []
        self.excl = defaultdict(float)
        self.detail = defaultdict(float)  # "kernel name" / "op Class.forward" -> exclusive seconds
        self.gemms: Counter = Counter()

    def timed(self, part: str, fn, *args, detail: str | None = None, **kwargs):
        frame = [0.0]
        self.stack.append(frame)
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            dt = time.perf_counter() - t0
            self.stack.pop()
            self.excl[part] += dt - frame[0]
            if detail is not None:
                self.detail[detail] += dt - frame[0]
            if self.stack:
                self.stack[-1][0] += dt

    def wrap(self, fn, part: str, detail: str | None = None):
        clock = self

        def wrapper(*args, **kwargs):
            if not clock.on:
                return fn(*args, **kwargs)
            return clock.timed(part, fn, *args, detail=detail, **kwargs)

        wrapper.__wrapped__ = fn
        wrapper.__name__ = getattr(fn, "__name__", "wrapped")
        return wrapper


def _layout(x):
    """(shape, dtype, axis order by decreasing stride): enough to rebuild an array laid out alike."""
    import numpy as np
    order = tuple(int(i) for i in np.argsort([-abs(s) for s in x.strides], kind="stable"))
    return ("array", tuple(x.shape), x.dtype.str, order)


def _rebuild(spec, rng):
    import numpy as np
    if not (isinstance(spec, tuple) and spec and spec[0] == "array"):
        return spec
    _, shape, dtype, order = spec
    base = rng.standard_normal([shape[i] for i in order]).astype(np.dtype(dtype))
    return base.transpose(np.argsort(order))


def _einsum_is_gemm(subscripts, n_operands: int) -> bool:
    """A product with a contracted index and a free index on each side (not a batched dot)."""
    if not isinstance(subscripts, str) or "->" not in subscripts:
        return True
    ins, out = subscripts.replace(" ", "").split("->")
    ins = ins.split(",")
    if len(ins) != 2:
        return n_operands > 2
    a, b = set(ins[0]), set(ins[1])
    return bool((a & b) - set(out)) and bool((a - b) & set(out)) and bool((b - a) & set(out))


def _gemm_hooks(clock: _Clock):
    """The two functions that rewritten code calls in place of `a @ b` and np.matmul(...)."""
    import numpy as np

    def matmul_op(a, b):
        if not clock.on or type(a) is not np.ndarray or type(b) is not np.ndarray:
            return a @ b
        if clock.recording:
            clock.gemms[("op", (_layout(a), _layout(b)), ())] += 1
        return clock.timed("gemm", np.matmul, a, b)

    def gemm_call(name, fn, *args, **kwargs):
        arrays = [x for x in args if type(x) is np.ndarray]
        if not clock.on or not arrays or (name == "einsum" and not _einsum_is_gemm(args[0], len(arrays))):
            return fn(*args, **kwargs)
        if clock.recording:
            sig_args = tuple(_layout(x) if type(x) is np.ndarray else x for x in args)
            sig_kw = tuple(sorted((k, _layout(v) if type(v) is np.ndarray else v) for k, v in kwargs.items()))
            try:
                clock.gemms[(name, sig_args, sig_kw)] += 1
            except TypeError:   # an unhashable parameter (a list of axes): left out of the floor
                pass
        return clock.timed("gemm", fn, *args, **kwargs)

    return matmul_op, gemm_call


class _GemmRewriter(ast.NodeTransformer):
    def __init__(self):
        self.changed = False

    def visit_BinOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, ast.MatMult):
            self.changed = True
            return ast.copy_location(ast.Call(ast.Name(HOOK_OP, ast.Load()), [node.left, node.right], []), node)
        return node

    def visit_Call(self, node):
        self.generic_visit(node)
        f = node.func
        if (isinstance(f, ast.Attribute) and f.attr in GEMM_FUNCS and isinstance(f.value, ast.Name)
                and f.value.id in ARRAY_MODULES):
            self.changed = True
            return ast.copy_location(ast.Call(ast.Name(HOOK_CALL, ast.Load()), [ast.Constant(f.attr), f, *node.args],
                                              node.keywords), node)
        return node


def _rewrite(fn):
    """fn with its GEMMs routed through the hooks (same globals, closure and defaults), or None
    when it has none or its source cannot be read."""
    if not isinstance(fn, types.FunctionType):
        return None
    try:
        src = textwrap.dedent(inspect.getsource(fn))
        tree = ast.parse(src)
    except (OSError, TypeError, SyntaxError):
        return None
    fdef = tree.body[0]
    if not isinstance(fdef, ast.FunctionDef) or fdef.name != fn.__name__:
        return None
    rw = _GemmRewriter()
    rw.visit(fdef)
    if not rw.changed:
        return None
    fdef.decorator_list = []
    fdef.returns = None
    a = fdef.args
    for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]:
        if arg is not None:
            arg.annotation = None
    # nested in a function that binds the free variables, so that the closure cells line up
    outer = ast.parse("def _ndiv_outer():\n" + "".join(f"    {v} = None\n" for v in fn.__code__.co_freevars)
                      + "    pass\n").body[0]
    outer.body = outer.body[:-1] + [fdef]
    ast.increment_lineno(fdef, fn.__code__.co_firstlineno - fdef.lineno)
    module = ast.Module(body=[outer], type_ignores=[])
    ast.fix_missing_locations(module)
    code = compile(module, fn.__code__.co_filename, "exec")
    outer_code = next(c for c in code.co_consts if isinstance(c, types.CodeType))
    inner = next(c for c in outer_code.co_consts if isinstance(c, types.CodeType) and c.co_name == fn.__name__)
    cells = dict(zip(fn.__code__.co_freevars, fn.__closure__ or ()))
    if set(inner.co_freevars) - set(cells):
        return None
    new = types.FunctionType(inner, fn.__globals__, fn.__name__, fn.__defaults__,
                             tuple(cells[v] for v in inner.co_freevars) or None)
    new.__kwdefaults__ = fn.__kwdefaults__
    new.__qualname__, new.__module__, new.__doc__ = fn.__qualname__, fn.__module__, fn.__doc__
    new.__dict__.update(fn.__dict__)
    return new


def _subclasses(cls):
    out, todo = [], [cls]
    while todo:
        c = todo.pop()
        for s in c.__subclasses__():
            if s not in out:
                out.append(s)
                todo.append(s)
    return out


class Instrumented:
    """Context manager: wraps the Functions, kernels, optimizers and the sampler, restores them."""

    def __init__(self, clock: _Clock):
        self.clock = clock
        self.undo: list = []     # (namespace dict or class, name, original)

    def _set(self, owner, name, value):
        if isinstance(owner, dict):
            self.undo.append((owner, name, owner.get(name, _MISSING)))
            owner[name] = value
        else:
            self.undo.append((owner, name, owner.__dict__.get(name, _MISSING)))
            setattr(owner, name, value)

    def __enter__(self):
        import ndiv
        import ndiv.autograd.function
        import ndiv.data.windows
        import ndiv.kernels.cpu as cpu
        import ndiv.optim
        import ndiv.models  # noqa: F401  (every model's Functions are defined by now)

        clock = self.clock
        matmul_op, gemm_call = _gemm_hooks(clock)
        ndiv_modules = [m for n, m in list(sys.modules.items())
                        if m is not None and (n == "ndiv" or n.startswith("ndiv.")) and not n.startswith("ndiv.kernels.cuda")]
        replaced = {}  # id(original) -> replacement, for every module that imported it by name

        def hooks_into(globs):
            if HOOK_OP not in globs:
                self._set(globs, HOOK_OP, matmul_op)
                self._set(globs, HOOK_CALL, gemm_call)

        # the Functions: GEMMs rewritten, forward/backward timed as "numpy"
        for cls in _subclasses(ndiv.autograd.function.Function):
            for name, fn in list(cls.__dict__.items()):
                if not isinstance(fn, types.FunctionType):
                    continue
                new = _rewrite(fn)
                if new is not None:
                    hooks_into(fn.__globals__)
                target = new or fn
                if name in ("forward", "backward"):
                    target = clock.wrap(target, "numpy", f"op {cls.__name__}.{name}")
                if target is not fn:
                    self._set(cls, name, target)
        # module-level helpers of the ops and the kernels' Python wrappers: GEMMs rewritten
        for mod in ndiv_modules:
            if not (mod.__name__.startswith(("ndiv.autograd.ops", "ndiv.kernels.cpu"))
                    or mod.__name__ in ("ndiv.autograd.amp", "ndiv.memory")):
                continue
            for name, fn in list(vars(mod).items()):
                if isinstance(fn, types.FunctionType) and fn.__module__ == mod.__name__ and id(fn) not in replaced:
                    new = _rewrite(fn)
                    if new is not None:
                        hooks_into(fn.__globals__)
                        replaced[id(fn)] = new
        # the kernels: every public function of ndiv.kernels.cpu, timed as "kernels"
        for name, fn in list(vars(cpu).items()):
            if isinstance(fn, types.FunctionType) and not name.startswith("_"):
                replaced[id(fn)] = clock.wrap(replaced.get(id(fn), fn), "kernels", f"kernel {name}")
        originals = {}
        for mod in ndiv_modules:
            for name, fn in list(vars(mod).items()):
                if id(fn) in replaced and isinstance(fn, types.FunctionType):
                    originals[id(fn)] = fn
                    self._set(vars(mod), name, replaced[id(fn)])
        # the optimizers' step and the sampler
        for cls in [ndiv.optim.Optimizer, *_subclasses(ndiv.optim.Optimizer)]:
            if "step" in cls.__dict__:
                self._set(cls, "step", clock.wrap(cls.__dict__["step"], "optimizer"))
        sampler = ndiv.data.windows.TrainWindowSampler
        self._set(sampler, "sample", clock.wrap(sampler.__dict__["sample"], "sampling"))
        return self

    def __exit__(self, *exc):
        for owner, name, value in reversed(self.undo):
            if isinstance(owner, dict):
                if value is _MISSING:
                    owner.pop(name, None)
                else:
                    owner[name] = value
            elif value is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, value)
        self.undo = []
        return False


_MISSING = object()


class _StepMarks:
    """Timestamps (and the clock's parts) at each TrainWindowSampler.sample entry and fit end."""

    def __init__(self, clock: _Clock, record_step: int | None = None):
        self.clock, self.record_step = clock, record_step
        self.marks: list = []

    def __enter__(self):
        import ndiv.data.windows
        cls = ndiv.data.windows.TrainWindowSampler
        self.cls, self.orig = cls, cls.__dict__["sample"]
        marks, clock, record_step = self.marks, self.clock, self.record_step
        inner = cls.sample

        def sample(sampler, *args, **kwargs):
            marks.append((time.perf_counter(), dict(clock.excl), dict(clock.detail)))
            clock.recording = record_step is not None and len(marks) == record_step
            return inner(sampler, *args, **kwargs)

        cls.sample = sample
        return self

    def end(self):
        self.marks.append((time.perf_counter(), dict(self.clock.excl), dict(self.clock.detail)))
        self.clock.recording = False

    def __exit__(self, *exc):
        self.cls.sample = self.orig
        return False

    def steps(self, skip_first: bool = True):
        """[(seconds, {part: seconds})] per step, the first step left out when there are others."""
        out = []
        for (t0, e0, _), (t1, e1, _) in zip(self.marks, self.marks[1:]):
            out.append((t1 - t0, {p: e1.get(p, 0.0) - e0.get(p, 0.0) for p in PARTS if p != "overhead"}))
        return out[1:] if skip_first and len(out) > 1 else out

    def details(self, skip_first: bool = True) -> dict:
        """{"kernel name" / "op Class.forward": mean seconds per step} over the steps of steps()."""
        first = 1 if skip_first and len(self.marks) > 2 else 0
        d0, d1 = self.marks[first][2], self.marks[-1][2]
        k = len(self.marks) - 1 - first
        return {name: (v - d0.get(name, 0.0)) / k for name, v in d1.items()}


# -- the floor -----------------------------------------------------------------------------------
def gemm_floor(gemms: Counter, repeat: int = 5, min_time: float = 2e-3) -> float:
    """Seconds for one step's GEMMs (signature -> count), each timed alone (best of `repeat`)."""
    import numpy as np

    rng = np.random.default_rng(0)
    funcs = {"op": np.matmul, "matmul": np.matmul, "dot": np.dot, "einsum": np.einsum,
             "tensordot": np.tensordot, "inner": np.inner, "vdot": np.vdot}
    total = 0.0
    for (name, sig_args, sig_kw), count in gemms.items():
        args = [_rebuild(s, rng) for s in sig_args]
        kwargs = {k: _rebuild(v, rng) for k, v in sig_kw}
        fn = funcs[name]
        fn(*args, **kwargs)
        t0 = time.perf_counter()
        fn(*args, **kwargs)
        number = max(1, int(min_time / max(time.perf_counter() - t0, 1e-7)))
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            for _ in range(number):
                fn(*args, **kwargs)
            best = min(best, (time.perf_counter() - t0) / number)
        total += count * best
    return total


# -- one model -----------------------------------------------------------------------------------
@dataclass
class Profile:
    model: str
    data: str
    steps: int
    step: float                 # uninstrumented, median seconds per step
    step_instrumented: float    # mean seconds per step of the instrumented run
    parts: dict                 # part -> mean seconds per step (instrumented run); they sum to step_instrumented
    floor: float                # seconds: that step's GEMMs timed alone
    n_gemms: int                # GEMM calls in one step
    gemm_shapes: list = field(default_factory=list)   # [(name, shapes, count)], the largest first
    details: dict = field(default_factory=dict)       # "kernel name" / "op Class.forward" -> seconds per step

    @property
    def ratio(self) -> float:
        return self.step / self.floor if self.floor > 0 else float("inf")


def build_model(name: str, h: int, input_size: int, steps: int, n_series: int, **hparams):
    import ndiv.models
    cls = ndiv.models.MODELS[name]
    kw = dict(h=h, input_size=input_size, max_steps=steps, random_seed=1, enable_progress_bar=False)
    if cls.MULTIVARIATE:
        kw["n_series"] = n_series
    kw.update(hparams)
    return cls(**kw)


def _fit(name, df, h, input_size, freq, steps, n_series, hparams, marks=None):
    import ndiv
    model = build_model(name, h, input_size, steps, n_series, **hparams)
    fc = ndiv.Forecaster(models=[model], freq=freq)
    if marks is None:
        fc.fit(df)
        return
    orig = model.fit_dataset

    def fit_dataset(*args, **kwargs):      # the last step ends where fit_dataset returns
        out = orig(*args, **kwargs)
        marks.end()
        return out

    model.fit_dataset = fit_dataset
    fc.fit(df)


def profile(name: str, data: str = "m4_hourly", steps: int = 10, n_series: int | None = None,
            hparams: dict | None = None, df=None) -> Profile:
    """Profile `steps` training steps of ndiv.models.MODELS[name] on a workload (see the module
    docstring). hparams: model options over NeuralForecast's defaults; n_series: the first n series."""
    import ndiv.models
    if name not in ndiv.models.MODELS:
        raise ValueError(f"unknown model {name!r}; ndiv.models.MODELS has {sorted(ndiv.models.MODELS)}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    hparams = dict(hparams or {})
    if df is None:
        df, h, input_size, freq = load_data(data, n_series)
    else:
        h, input_size, freq = WORKLOADS[data]
    n = len(set(df["unique_id"].tolist()))
    _fit(name, df, h, input_size, freq, 2, n, hparams)              # compiles and lazy imports

    plain = _StepMarks(_Clock())
    with plain:
        _fit(name, df, h, input_size, freq, steps, n, hparams, plain)
    step = statistics.median([s for s, _ in plain.steps()])

    clock = _Clock()
    marks = _StepMarks(clock, record_step=steps)                   # the last step's GEMMs
    with Instrumented(clock), marks:
        clock.on = True
        try:
            _fit(name, df, h, input_size, freq, steps, n, hparams, marks)
        finally:
            clock.on = False
    per_step = marks.steps()
    k = len(per_step)
    parts = {p: sum(d.get(p, 0.0) for _, d in per_step) / k for p in PARTS if p != "overhead"}
    step_inst = sum(s for s, _ in per_step) / k
    parts["overhead"] = step_inst - sum(parts.values())
    floor = gemm_floor(clock.gemms)
    shapes = sorted(((nm, tuple(a[1] for a in args if isinstance(a, tuple) and a and a[0] == "array"), c)
                     for (nm, args, _), c in clock.gemms.items()), key=lambda r: -_flops(r[1]) * r[2])
    return Profile(name, data, steps, step, step_inst, parts, floor, sum(clock.gemms.values()), shapes,
                   marks.details())


def _flops(shapes) -> float:
    import math
    if len(shapes) < 2:
        return 0.0
    return 2.0 * math.prod(shapes[0]) * (shapes[1][-1] if len(shapes[1]) > 1 else 1)


def format_profile(p: Profile) -> str:
    ms = 1e3
    lines = [f"{p.model} on {p.data}: {p.steps} steps",
             f"  step (plain, median)       {p.step * ms:9.2f} ms",
             f"  step (instrumented, mean)  {p.step_instrumented * ms:9.2f} ms = 100%"]
    for part in PARTS:
        v = p.parts[part]
        lines.append(f"    {LABELS[part]:<32} {v * ms:9.2f} ms  {100 * v / max(p.step_instrumented, 1e-12):5.1f}%")
    lines.append(f"  GEMM floor ({p.n_gemms} GEMMs alone) {p.floor * ms:9.2f} ms; GEMMs in the step at "
                 f"{p.parts['gemm'] / p.floor if p.floor else float('nan'):.2f}x their floor")
    for nm, shapes, c in p.gemm_shapes[:5]:
        lines.append(f"    {c:3d} x {nm} {' @ '.join(str(list(s)) for s in shapes)}")
    top = sorted(p.details.items(), key=lambda kv: -kv[1])[:int(os.environ.get("NDIV_PROFILE_TOP", 8))]
    if top:
        lines.append("  the slowest kernels and ops (exclusive, per step):")
        lines += [f"    {v * ms:9.2f} ms  {name}" for name, v in top]
    lines.append(f"  step = {p.ratio:.2f} x floor")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", help="a name in ndiv.models.MODELS, several joined by commas, or 'all'")
    ap.add_argument("--data", default="m4_hourly", choices=sorted(WORKLOADS))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--series", type=int, default=None, help="use the first N series only")
    args = ap.parse_args(argv)
    if "numpy" not in sys.modules:   # thread pools read these when they start
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    else:
        print("note: NumPy was already loaded; --threads applies to Numba only", file=sys.stderr)
    sys.path.insert(0, ROOT)
    import ndiv  # noqa: F401  (before Numba starts its threads: ndiv sets their wait policy)
    import numba
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    import ndiv.models
    names = sorted(ndiv.models.MODELS) if args.model == "all" else args.model.split(",")
    df = load_data(args.data, args.series)[0]
    failed = 0
    for name in names:
        try:
            print(format_profile(profile(name, args.data, args.steps, df=df)), flush=True)
        except Exception as e:  # noqa: BLE001 - one model's failure should not hide the others' profiles
            if len(names) == 1:
                raise
            failed += 1
            print(f"{name} on {args.data}: failed: {type(e).__name__}: {e}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
