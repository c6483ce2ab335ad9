"""The package's import structure: no import cycles, and every import points down the layers.

The graph is built with :mod:`ast` from the source of every module under
``gpu_media/`` and ``cpu_fallback/``: module-level **and** function-level imports
(a lazy ``from .viewer import write_viewer`` inside a function is still a
dependency), relative imports resolved against the importing module's package.
Imports under ``if TYPE_CHECKING:`` are left out (they never run), as are imports by
name (``importlib.import_module("...")``, how the backend dispatch loads the CuPy
backend). docs/ARCHITECTURE.md explains the layers.
"""

from __future__ import annotations

import ast
import fnmatch
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("gpu_media", "cpu_fallback")

#: Lowest first. A module may import modules of its own layer or of a lower one, never of
#: a higher one. Every module must match exactly one pattern (a new module has to be
#: placed here on purpose); a pattern may match nothing yet.
LAYERS: list[tuple[str, list[str]]] = [
    ("errors", ["gpu_media.errors", "gpu_media.demo", "gpu_media.demo.*"]),  # demo: data only
    ("checks", ["gpu_media.checks"]),
    ("foundations", ["gpu_media.fileio", "gpu_media.storage", "gpu_media.codecs", "gpu_media._arrays",
                     "gpu_media.png", "gpu_media.threads"]),
    # the per-pixel implementations and the GPU libraries they wrap; they satisfy the
    # gpu_media.backend interface structurally and never import the dispatch or a stage
    ("backends", ["cpu_fallback", "cpu_fallback.*", "gpu_media.cuda", "gpu_media.cuda.*"]),
    ("dispatch", ["gpu_media.backend"]),
    ("stages", ["gpu_media.normalize", "gpu_media.masks", "gpu_media.boxes", "gpu_media.encode",
                "gpu_media.warmup"]),
    # evaluation: computes on the backend (mask confusion matrices) and with pycocotools; dump writes its results
    ("eval", ["gpu_media.eval", "gpu_media.eval.*"]),
    ("viewer", ["gpu_media.viewer"]),  # written by dump after the index, so below it
    # within dump: options, layout < index < pipeline, finish < the package itself (write_batches)
    ("dump", ["gpu_media.dump", "gpu_media.dump.*"]),
    ("front ends", ["gpu_media.formats", "gpu_media.formats.*", "gpu_media.wandb_compat", "gpu_media.ray"]),
    ("entry points", ["gpu_media.cli", "gpu_media"]),
]


def _module_files() -> dict[str, str]:
    """{dotted module name: path} of every .py file of the packages."""
    out = {}
    for pkg in PACKAGES:
        for dirpath, dirnames, files in os.walk(os.path.join(ROOT, pkg)):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for f in sorted(files):
                if not f.endswith(".py"):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, f), ROOT)[: -len(".py")].split(os.sep)
                if rel[-1] == "__init__":
                    rel = rel[:-1]
                out[".".join(rel)] = os.path.join(dirpath, f)
    return out


MODULES = _module_files()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST):
    """Every Import/ImportFrom node, at any depth, except under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` names (relative levels resolved)."""
    if not node.level:
        return node.module or ""
    is_pkg = os.path.basename(MODULES[module]) == "__init__.py"
    parts = module.split(".") if is_pkg else module.split(".")[:-1]
    base = parts[: len(parts) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _known(name: str) -> str | None:
    """The deepest module of ours that ``name`` (a dotted import path) loads, or None."""
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        cand = ".".join(parts[:k])
        if cand in MODULES:
            return cand
    return None


def import_graph() -> dict[str, set[str]]:
    """{module: modules of ours it imports}."""
    graph = {}
    for module, path in MODULES.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
        deps = set()
        for node in _import_nodes(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = _resolve(module, node)
                # ``from pkg import sub`` imports the submodule pkg.sub; ``from mod import name`` imports mod
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
            for t in targets:
                dep = _known(t)
                if dep is not None and dep != module:
                    deps.add(dep)
        graph[module] = deps
    return graph


GRAPH = import_graph()


def layer_of(module: str) -> int:
    hits = [k for k, (_, patterns) in enumerate(LAYERS) if any(fnmatch.fnmatchcase(module, p) for p in patterns)]
    assert len(hits) == 1, (
        f"{module} matches {len(hits)} layers of tests/test_architecture.py LAYERS; place it in exactly one"
    )
    return hits[0]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each as one cycle path."""
    index, low, on_stack, stack, comps = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    out = []
    for comp in comps:  # one concrete cycle through the component's first module, for the message
        members, start = set(comp), comp[0]
        path, seen = [start], {start}
        while True:
            nxt = sorted(w for w in graph[path[-1]] if w in members)
            back = [w for w in nxt if w == start]
            if back or not nxt:
                out.append(path + [start])
                break
            step = next((w for w in nxt if w not in seen), nxt[0])
            if step in seen:
                out.append(path[path.index(step):] + [step])
                break
            path.append(step)
            seen.add(step)
    return out


def test_the_graph_sees_the_packages():
    assert {"gpu_media", "gpu_media.dump", "gpu_media.viewer", "gpu_media.formats.coco", "gpu_media.formats.npz",
            "cpu_fallback", "cpu_fallback.encode"} <= set(GRAPH)
    # module-level, function-level and relative imports are all edges
    assert "gpu_media.fileio" in GRAPH["gpu_media.dump"]
    assert "gpu_media.viewer" in GRAPH["gpu_media.dump.finish"]  # imported inside finish_dump
    assert "gpu_media.dump.pipeline" in GRAPH["gpu_media.dump"]  # from . import pipeline
    assert "cpu_fallback" in GRAPH["gpu_media.backend"]  # imported inside get_backend
    assert "gpu_media.cuda.kernels" in GRAPH["gpu_media.cuda.backend"]  # from . import kernels as _k
    assert "gpu_media.png" in GRAPH["gpu_media.cuda.backend"]  # from .. import png as _png
    assert "gpu_media.dump" in GRAPH["gpu_media.formats.coco"]  # from ..dump import ...


def test_no_import_cycles():
    cycles = _cycles(GRAPH)
    assert not cycles, "import cycles (lazy imports count): " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_has_a_layer(module):
    layer_of(module)


def test_imports_point_down_the_layers():
    upward = [
        f"{m} ({LAYERS[layer_of(m)][0]}) imports {d} ({LAYERS[layer_of(d)][0]})"
        for m, deps in sorted(GRAPH.items()) for d in sorted(deps) if layer_of(d) > layer_of(m)
    ]
    assert not upward, "imports of a higher layer:\n" + "\n".join(upward)


def test_cpu_fallback_stands_alone():
    """The CPU backend needs nothing of gpu_media beyond errors, checks, codecs, the PNG container and cores()."""
    allowed = {"gpu_media.errors", "gpu_media.checks", "gpu_media.codecs", "gpu_media.png", "gpu_media.threads"}
    bad = {m: sorted(d for d in deps if d.startswith("gpu_media") and d not in allowed)
           for m, deps in GRAPH.items() if m.split(".")[0] == "cpu_fallback"}
    assert not any(bad.values()), bad


def test_the_codec_table_is_the_one_source_of_formats():
    """gpu_media.codecs is plain data (errors and checks only); every module that knows formats reads it."""
    assert GRAPH["gpu_media.codecs"] <= {"gpu_media.errors", "gpu_media.checks"}
    readers = {m for m, deps in GRAPH.items() if "gpu_media.codecs" in deps}
    assert {"gpu_media.encode", "gpu_media.cli", "gpu_media.cuda.backend", "gpu_media.cuda.nvimgcodec",
            "cpu_fallback.encode"} <= readers


def test_viewer_and_dump_are_not_entangled():
    """``dump`` writes the viewer page after the index; the viewer reads only files, and writes through fileio."""
    assert "gpu_media.dump" not in GRAPH["gpu_media.viewer"]
    assert "gpu_media.fileio" in GRAPH["gpu_media.viewer"]


def test_formats_package_imports_no_reader():
    """``import gpu_media.formats.npz`` must not pull in another reader's dependencies."""
    assert not {d for d in GRAPH["gpu_media.formats"] if d.startswith("gpu_media.formats.")}


def _aliases(module: str, tree: ast.AST) -> dict[str, str]:
    """{local name: module of ours} for every name an import binds to one of our modules."""
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = _resolve(module, node)
            for a in node.names:
                if f"{base}.{a.name}" in MODULES:
                    out[a.asname or a.name] = f"{base}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if _known(a.name) is not None:  # ``import a.b`` binds ``a``; ``import a.b as c`` binds ``c`` to a.b
                    out[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
    return out


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(module: str, tree: ast.AST) -> list[str]:
    """Where ``module`` uses another module's ``_private`` name.

    ``from X import _name`` and ``X._name`` (``X`` bound to one of our modules by an
    import, dotted chains such as ``gpu_media.dump._x`` included), where ``X`` is not
    ``module`` itself. A private *module* (``from . import _arrays``) is a module of the
    package, not a name of another module, and is allowed; its public names are its interface.
    """
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = _resolve(module, node)
            owner = _known(base)
            for a in node.names:
                if owner is not None and owner != module and _private(a.name) and f"{base}.{a.name}" not in MODULES:
                    bad.append(f"line {node.lineno}: from {base} import {a.name}")
    aliases = _aliases(module, tree)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and _private(node.attr)):
            continue
        chain, value = [], node.value
        while isinstance(value, ast.Attribute):
            chain.append(value.attr)
            value = value.value
        if not (isinstance(value, ast.Name) and value.id in aliases):
            continue
        owner = ".".join([aliases[value.id], *reversed(chain)])
        if owner in MODULES and owner != module and f"{owner}.{node.attr}" not in MODULES:
            bad.append(f"line {node.lineno}: {owner}.{node.attr}")
    return bad


def test_no_module_uses_another_modules_private_names():
    """A name with a leading underscore is its module's own; what another module needs is public there."""
    found = {}
    for module, path in MODULES.items():
        with open(path, encoding="utf-8") as f:
            bad = private_uses(module, ast.parse(f.read(), filename=path))
        if bad:
            found[module] = bad
    assert not found, "imports or uses of another module's _private names:\n" + "\n".join(
        f"{m}: {b}" for m, bs in sorted(found.items()) for b in bs)


def test_the_private_name_finder_finds_them():
    tree = ast.parse("from .dump import _chunks, write_dump\nfrom . import _arrays, dump as d\n"
                     "import gpu_media.dump\nimport cpu_fallback.encode as enc\n"
                     "d._finish(); _arrays._xp(1); gpu_media.dump._paths_of(1); enc._executor(); d.__name__\n"
                     "def f(self):\n    return self._own, _arrays.image_groups\n")
    assert sorted(private_uses("gpu_media.ray", tree)) == sorted([
        "line 1: from gpu_media.dump import _chunks",
        "line 5: gpu_media.dump._finish", "line 5: gpu_media._arrays._xp", "line 5: gpu_media.dump._paths_of",
        "line 5: cpu_fallback.encode._executor",
    ])
    assert private_uses("gpu_media.dump", ast.parse("from gpu_media.dump import _progress\n")) == []  # its own
