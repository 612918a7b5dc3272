"""The asv suites still run: each benchmark of the ndiv side, set up and called once on small sizes.

asv reports a broken benchmark only when someone runs it; this test makes it fail pytest too.
Sizes are shrunk through the suites' own knobs (MLPStepPool.sizes, models.STEPS), so the whole
file stays a few seconds. Numba compiles nothing here (NUMBA_DISABLE_JIT=1 in the subprocesses
of the timeraw_ benchmarks). kernels.py (the kernels issue's suite, full-size shapes) is imported
and its signatures checked; `asv_benchmarks/ci_quick.sh` runs it.
"""
from __future__ import annotations

import importlib
import inspect
import itertools
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.path.join(ROOT, "asv_benchmarks", "benchmarks")
PREFIXES = ("time_", "timeraw_", "track_", "peakmem_", "mem_")
RUN_SUITES = ["ops", "memory_pool", "import_time", "models"]   # set up and called here
IMPORT_ONLY = ["kernels", "llm"]                                     # imported and checked here

@pytest.fixture(scope="module", autouse=True)
def bench_path():
    sys.path.insert(0, os.path.dirname(BENCH_DIR))
    yield
    sys.path.remove(os.path.dirname(BENCH_DIR))


def suite(name):
    return importlib.import_module(f"benchmarks.{name}")


def benchmark_classes(module):
    """(class, [benchmark method names]) as asv discovers them: public classes, prefixed methods."""
    for cname, cls in vars(module).items():
        if cname.startswith("_") or not inspect.isclass(cls) or cls.__module__ != module.__name__:
            continue
        methods = [m for m in dir(cls) if m.startswith(PREFIXES) and callable(getattr(cls, m))]
        if methods:
            yield cls, methods


def ndiv_params(cls):
    """The first value of every parameter, with backend='ndiv'."""
    names, values = list(getattr(cls, "param_names", [])), list(getattr(cls, "params", []))
    if values and not isinstance(values[0], (list, tuple)):
        values = [values]
    assert len(names) == len(values), f"{cls.__name__}: param_names and params differ in length"
    return [("ndiv" if n == "backend" else v[0]) for n, v in zip(names, values)]


def run_timeraw(code):
    stmt, setup = code if isinstance(code, tuple) else (code, "")
    program = textwrap.dedent(setup) + "\n" + textwrap.dedent(stmt)
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    proc = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.fixture
def small(monkeypatch):
    """Small sizes through the suites' knobs (NUMBA_DISABLE_JIT goes to child processes only:
    set here, it would reach Numba in this process and every later test)."""
    monkeypatch.setattr(suite("memory_pool").MLPStepPool, "sizes", dict(batch=64, n_in=8, hidden=256, n_out=4))
    monkeypatch.setattr(suite("ops").MLPStep, "sizes", dict(batch=8, n_in=8, hidden=32, n_out=4))
    monkeypatch.setattr(suite("models"), "STEPS", 2)
    monkeypatch.setattr(suite("models"), "M4_SERIES", 3)


@pytest.mark.parametrize("name", RUN_SUITES)
def test_suite_runs_once_on_the_ndiv_side(name, small):
    module = suite(name)
    classes = list(benchmark_classes(module))
    assert classes, f"{name}.py has no benchmark classes"
    ran = 0
    for cls, methods in classes:
        params = ndiv_params(cls)
        bench = cls()
        try:
            if hasattr(bench, "setup"):
                bench.setup(*params)
        except NotImplementedError:
            continue  # asv skips this case too (a model or kernel that does not exist yet)
        try:
            for m in methods:
                try:
                    out = getattr(bench, m)(*params)
                except NotImplementedError:  # SkipNotImplemented: asv shows n/a
                    continue
                if m.startswith("timeraw_"):
                    run_timeraw(out)
                elif m.startswith("track_"):
                    assert isinstance(out, (int, float)), f"{cls.__name__}.{m} returned {out!r}"
                ran += 1
        finally:
            if hasattr(bench, "teardown"):
                bench.teardown(*params)
    assert ran or name == "models", f"{name}.py: every case skipped on the ndiv side"


def test_ops_both_backends_agree():
    """The torch side of ops.MLPStep starts from ndiv's weights: the same first loss."""
    torch = pytest.importorskip("torch")  # noqa: F841
    from benchmarks.ops import build_mlp_step

    losses = [float(build_mlp_step(b, batch=8, n_in=8, hidden=32, n_out=4)().item()) for b in ("ndiv", "torch")]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


@pytest.mark.parametrize("name", RUN_SUITES + IMPORT_ONLY)
def test_suite_signatures(name):
    """Every benchmark, setup and teardown takes the class's parameters (as `asv check` does)."""
    if not os.path.exists(os.path.join(BENCH_DIR, f"{name}.py")):
        pytest.skip(f"{name}.py is not written yet")
    for cls, methods in benchmark_classes(suite(name)):
        n = len(getattr(cls, "param_names", []))
        for m in methods + [h for h in ("setup", "teardown") if hasattr(cls, h)]:
            sig = inspect.signature(getattr(cls(), m))
            try:
                sig.bind(*range(n))
            except TypeError:
                pytest.fail(f"{name}.{cls.__name__}.{m}{sig} cannot take the {n} parameters {cls.param_names}")
        values = getattr(cls, "params", [])
        if n:
            assert len(list(itertools.product(*values))) > 0, f"{name}.{cls.__name__}: empty params"
