"""The computation graph of a scalar, as plain data: what ndiv's tape recorded.

`graph(loss)` walks `loss._ctx` and the Functions' `parents` (the same links `backward()` walks)
and returns a Graph: `nodes`, one dict per Tensor, parents before children, and `edges`, one
(src, dst, arg) per input of each op. A node says which op made it ('leaf' for inputs and
parameters), its shape, dtype, requires_grad, the norm of its `.grad` (leaves after backward;
with `backward=True` every node's), the parameter name when `model=` names it, and the module
that ran the op when the forward ran inside `record_modules(model)`.

    >>> x = ndiv.tensor([1.0, 2.0], requires_grad=True)
    >>> g = graph((x * x).sum(), backward=True)
    >>> [n["op"] for n in g.nodes], g.edges
    (['leaf', 'Mul', 'Sum'], [(0, 1, 0), (0, 1, 1), (1, 2, 0)])

Module scopes: `record_modules(model)` registers a forward pre-hook and a forward hook on every
submodule for the duration of a `with` block; when a module's forward returns, the Functions
between its outputs and its inputs that no inner module claimed are tagged with its name. Off
(outside the block) nothing is attached, so a forward costs what it always did.
"""
from __future__ import annotations

import contextlib

import numpy as np

from ndiv.autograd.tensor import Tensor

_SCOPE = "_viz_module"   # attribute a recorded Function carries: the name of the module that ran it


class Graph:
    """nodes: list of dicts (id, op, shape, dtype, requires_grad, grad_norm, name, module, output);
    edges: list of (src_id, dst_id, arg): node src is input number arg of the op that made dst."""

    def __init__(self, nodes: list, edges: list):
        self.nodes, self.edges = nodes, edges

    def __repr__(self):
        return f"Graph({len(self.nodes)} nodes, {len(self.edges)} edges)"

    def label(self, node: dict) -> str:
        """Two or three lines: name or op, shape and dtype, and the gradient norm when known."""
        title = node["name"] or ("input" if node["op"] == "leaf" else node["op"])
        if node["op"] == "module":
            title = f"{node['name']} ({node['n_ops']} ops)"
        text = f"{title}\n{tuple(node['shape'])} {node['dtype']}"
        if node["grad_norm"] is not None:
            text += f"\n|grad| {node['grad_norm']:.3g}"
        return text

    def to_dot(self) -> str:
        """Graphviz DOT text: boxes for leaves (bold when they require grad), ellipses for ops."""
        lines = ["digraph ndiv {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
        for n in self.nodes:
            shape = "box" if n["op"] in ("leaf", "module") else "ellipse"
            style = ', style="bold"' if n["op"] == "leaf" and n["requires_grad"] else ""
            label = self.label(n).replace('"', r'\"').replace("\n", r"\n")
            lines.append(f'  n{n["id"]} [label="{label}", shape={shape}{style}];')
        for src, dst, arg in self.edges:
            lines.append(f"  n{src} -> n{dst};")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def collapse(self, depth: int = 1) -> "Graph":
        """One node per module (its name cut to `depth` dotted parts) for the ops the module ran,
        with its parameters inside; constants (leaves that need no gradient) read only by modules
        are left out; other leaves and untagged ops stay as they are; edges deduplicated."""
        group_of = {}
        for n in self.nodes:
            scope = n["module"]
            if n["op"] == "leaf" and n["name"] and "." in n["name"]:
                scope = n["name"].rsplit(".", 1)[0]
            if scope:
                group_of[n["id"]] = ".".join(scope.split(".")[:depth])
        readers = {}
        for src, dst, _ in self.edges:
            readers.setdefault(src, []).append(dst)
        hidden = {n["id"] for n in self.nodes if n["op"] == "leaf" and not n["requires_grad"]
                  and n["id"] not in group_of and readers.get(n["id"])
                  and all(d in group_of for d in readers[n["id"]])}
        nodes, index = [], {}
        for n in self.nodes:
            if n["id"] in hidden:
                continue
            key = group_of.get(n["id"], n["id"])
            if key in index:
                agg = nodes[index[key]]
                agg["n_ops"] += n["op"] != "leaf"
                agg["shape"], agg["dtype"] = n["shape"], n["dtype"]   # the last op's output
                agg["requires_grad"] |= n["requires_grad"]
                continue
            index[key] = len(nodes)
            if isinstance(key, str):
                n = dict(n, op="module", name=key, module=key, n_ops=int(n["op"] != "leaf"), grad_norm=None)
            nodes.append(dict(n, id=index[key]))
        edges = []
        seen = set()
        for src, dst, arg in self.edges:
            if src in hidden:
                continue
            a = index[group_of.get(src, src)]
            b = index[group_of.get(dst, dst)]
            if a != b and (a, b) not in seen:
                seen.add((a, b))
                edges.append((a, b, arg))
        return Graph(nodes, edges)


def graph(scalar: Tensor, model=None, backward: bool = False, names: dict | None = None) -> Graph:
    """The graph that produced `scalar` (any Tensor with a recorded history).

    model: a Module whose named_parameters() label the leaves; names: {label: Tensor} for more
    labels (e.g. {'w': w, 'x': x}). backward: run
    scalar.backward(retain_graph=True) first with every intermediate retaining its gradient,
    so every node gets grad_norm (leaves' .grad accumulate as in any backward). Call graph()
    before a plain backward() frees the graph, or after backward(retain_graph=True).
    """
    if not isinstance(scalar, Tensor):
        raise TypeError(f"graph() takes a Tensor, got {type(scalar).__name__}")
    order = _toposort(scalar)
    if backward:
        for t in order:
            if t._ctx is not None and t.requires_grad:
                t.retain_grad()
        scalar.backward(retain_graph=True)
    labels = {id(p): k for k, p in model.named_parameters()} if model is not None else {}
    labels.update({id(t): k for k, t in (names or {}).items()})
    ids = {id(t): i for i, t in enumerate(order)}
    nodes, edges = [], []
    for i, t in enumerate(order):
        ctx = t._ctx
        grad = t.grad
        nodes.append(dict(
            id=i, op="leaf" if ctx is None else type(ctx).__name__, output=t._idx,
            shape=tuple(t.shape), dtype=str(t.dtype), requires_grad=bool(t.requires_grad),
            grad_norm=None if grad is None else float(np.linalg.norm(np.asarray(_host(grad)).ravel())),
            name=labels.get(id(t)), module=None if ctx is None else ctx.__dict__.get(_SCOPE)))
        if ctx is not None:
            edges.extend((ids[id(p)], i, arg) for arg, p in enumerate(ctx.parents))
    return Graph(nodes, edges)


def _host(a):
    from ndiv.device import to_device
    return to_device(a, "cpu")


def _toposort(root: Tensor) -> list:
    """Every Tensor reachable from root through the Functions' parents, inputs before outputs;
    iterative, in the order the inputs were given."""
    if root._ctx is not None and root._ctx.parents is None:
        raise ValueError("graph(): this graph was freed by backward(); call graph() before backward(), "
                         "or backward(retain_graph=True), or pass backward=True")
    order, state, stack = [], {}, [(root, False)]
    while stack:
        t, done = stack.pop()
        if done:
            order.append(t)
            continue
        if id(t) in state:
            continue
        state[id(t)] = t
        stack.append((t, True))
        if t._ctx is not None:
            for p in reversed(t._ctx.parents):
                if id(p) not in state:
                    stack.append((p, False))
    return order


@contextlib.contextmanager
def record_modules(model):
    """Within the block, tag every op a submodule of `model` runs with the submodule's dotted
    name (the model's own ops, between its submodules, stay untagged: collapsed, they are drawn
    one by one); the hooks are removed on exit."""
    handles, inputs = [], {}

    def pre(module, args):
        inputs.setdefault(id(module), []).append([a for a in _flat(args) if isinstance(a, Tensor)])

    def post_for(name):
        def post(module, args, out):
            stop = {id(t) for t in inputs[id(module)].pop()}
            _tag(out, name, stop)
        return post

    for name, m in model.named_modules():
        if m is model:
            continue
        handles.append(m.register_forward_pre_hook(pre))
        handles.append(m.register_forward_hook(post_for(name)))
    try:
        yield model
    finally:
        for h in handles:
            h.remove()


def _flat(obj):
    if isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _flat(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _flat(o)
    else:
        yield obj


def _tag(out, name, stop):
    """Tag the untagged Functions behind `out`, not going past the module's inputs `stop`."""
    stack = [t for t in _flat(out) if isinstance(t, Tensor) and id(t) not in stop]
    seen = set()
    while stack:
        t = stack.pop()
        ctx = t._ctx
        if ctx is None or id(ctx) in seen or ctx.parents is None:
            continue
        seen.add(id(ctx))
        if _SCOPE not in ctx.__dict__:
            ctx.__dict__[_SCOPE] = name
        stack.extend(p for p in ctx.parents if id(p) not in stop)

