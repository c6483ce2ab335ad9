"""gpu_media.backend: the Backend protocol, the registry of backends, and callers that use declared members only.

Both backends satisfy :class:`gpu_media.backend.Backend`: ``cpu_fallback`` checked
with ``isinstance``, the CuPy backend by its source (no CuPy needed) and with
``isinstance`` where a GPU is usable (tests/test_cupy_backend.py also checks the
module imported under its stand-in CuPy). A third backend registered under a new
device name is reachable through ``get_backend`` and ``device=`` and does the work of
real stage calls, then is unregistered.
"""

from __future__ import annotations

import ast
import inspect
import os
import types

import numpy as np
import pytest

import cpu_fallback
import gpu_media as gm
from gpu_media import backend as B

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def protocol_members() -> dict[str, inspect.Signature | None]:
    """{member: signature without ``self``, or None for a data member} of :class:`Backend`."""
    out: dict[str, inspect.Signature | None] = {name: None for name in B.Backend.__annotations__}
    for name, fn in vars(B.Backend).items():
        if not name.startswith("_") and inspect.isfunction(fn):
            sig = inspect.signature(fn)
            out[name] = sig.replace(parameters=list(sig.parameters.values())[1:])
    return out


MEMBERS = protocol_members()


def test_the_protocol_lists_the_interface_with_docs():
    assert set(MEMBERS) == {"name", "xp", "normalize", "mask_stats", "confusion", "draw_outlines", "encode", "to_host",
                            "chunk_bytes"}
    for name, sig in MEMBERS.items():
        if sig is not None:
            doc = inspect.getdoc(vars(B.Backend)[name])
            assert doc and len(doc) > 30, f"Backend.{name} needs its docstring (shapes, dtypes, SPEC section)"


def _parameters(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


def test_cpu_backend_satisfies_the_protocol():
    assert isinstance(cpu_fallback, B.Backend)
    assert B.get_backend("cpu") is cpu_fallback
    assert cpu_fallback.name == "cpu" and cpu_fallback.xp is np
    for name, sig in MEMBERS.items():
        if sig is not None:
            assert _parameters(getattr(cpu_fallback, name)) == list(sig.parameters), f"cpu_fallback.{name}"


def test_a_module_missing_a_member_does_not_satisfy_it():
    partial = types.SimpleNamespace(**{k: getattr(cpu_fallback, k) for k in MEMBERS if k != "chunk_bytes"})
    assert not isinstance(partial, B.Backend)
    assert isinstance(types.SimpleNamespace(**{k: getattr(cpu_fallback, k) for k in MEMBERS}), B.Backend)


def _module_level_names(path: str) -> dict[str, ast.AST]:
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    out = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out[node.name] = node
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    out[t.id] = node
    return out


def test_cupy_backend_satisfies_the_protocol_by_its_source():
    """Without CuPy the module cannot be imported; its source must still define every member."""
    defined = _module_level_names(os.path.join(ROOT, "gpu_media", "cuda", "backend.py"))
    for name, sig in MEMBERS.items():
        assert name in defined, f"gpu_media/cuda/backend.py does not define Backend.{name}"
        node = defined[name]
        if sig is None:
            assert isinstance(node, ast.Assign), f"cupy_backend.{name} must be a module-level value"
        else:
            assert isinstance(node, ast.FunctionDef), f"cupy_backend.{name} must be a function"
            args = [a.arg for a in node.args.args]
            assert args == list(sig.parameters), f"cupy_backend.{name}{tuple(args)} vs Backend.{name}{sig}"
    name_node = defined["name"]
    assert isinstance(name_node.value, ast.Constant) and name_node.value.value == "gpu"


@pytest.mark.gpu
@pytest.mark.skipif(not gm.gpu_available(), reason="no usable GPU backend (CuPy + CUDA device)")
def test_cupy_backend_satisfies_the_protocol_on_a_gpu():
    import cupy

    be = B.get_backend("gpu")
    assert isinstance(be, B.Backend) and be.name == "gpu" and be.xp is cupy


# ---- the registry -------------------------------------------------------------------------------


def test_registry_lists_the_built_in_backends():
    assert B.backends()[:2] == ("cpu", "gpu")
    assert B.DEVICES == ("auto", "cpu", "gpu")
    with pytest.raises(ValueError, match="registered already"):
        B.register_backend("cpu", lambda: cpu_fallback)
    with pytest.raises(ValueError, match="cannot be unregistered"):
        B.unregister_backend("gpu")
    with pytest.raises(ValueError, match="non-empty string other than 'auto'"):
        B.register_backend("auto", lambda: cpu_fallback)
    with pytest.raises(ValueError, match="callable"):
        B.register_backend("x", cpu_fallback)
    with pytest.raises(ValueError, match="no backend named 'nope'"):
        B.get_backend("nope")
    with pytest.raises(ValueError, match="no backend named 'nope'"):
        B.unregister_backend("nope")
    with pytest.raises(ValueError, match=r"device must be one of \('auto', 'cpu', 'gpu'\), got 'nope'"):
        B.resolve_device("nope")


def test_gpu_without_a_gpu_is_a_device_error_through_the_registry():
    if gm.gpu_available():
        pytest.skip("this machine has a usable GPU")
    with pytest.raises(gm.DeviceError, match="device='gpu'"):
        B.get_backend("gpu")


class Recorder:
    """A third backend: cpu_fallback's functions, each call recorded, under another device name."""

    def __init__(self, name: str):
        self.name = name
        self.xp = np
        self.calls: list[str] = []

    def _rec(self, member):
        self.calls.append(member)
        return getattr(cpu_fallback, member)

    def normalize(self, x, layout, normalize=True):
        return self._rec("normalize")(x, layout, normalize)

    def mask_stats(self, masks):
        return self._rec("mask_stats")(masks)

    def confusion(self, gt, pred, num_classes):
        return self._rec("confusion")(gt, pred, num_classes)

    def draw_outlines(self, images, rects, image_index, colors, thickness):
        return self._rec("draw_outlines")(images, rects, image_index, colors, thickness)

    def encode(self, images, file_type, quality, compression_level=None):
        return self._rec("encode")(images, file_type, quality, compression_level)

    def to_host(self, x):
        return self._rec("to_host")(x)

    def chunk_bytes(self):
        return self._rec("chunk_bytes")()


@pytest.fixture
def third():
    """A Recorder registered as device "test" (its loader counts its calls); unregistered afterwards."""
    rec = Recorder("test")
    loads = []

    def loader():
        loads.append(1)
        return rec

    B.register_backend("test", loader)
    try:
        yield rec, loads
    finally:
        B.unregister_backend("test")
    assert "test" not in B.backends()


def test_a_registered_backend_is_used_by_real_stage_calls(third, tmp_path):
    rec, loads = third
    assert isinstance(rec, B.Backend)
    assert not loads  # registering calls nothing
    assert B.backends() == ("cpu", "gpu", "test")
    assert B.get_backend("test") is rec and B.get_backend("test") is rec
    assert loads == [1]  # loaded once, then cached

    x = np.random.default_rng(0).random((3, 6, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(gm.normalize(x, device="test"), gm.normalize(x, device="cpu"))
    assert rec.calls == ["normalize"]

    masks = {"m": {"mask_data": np.arange(90).reshape(3, 6, 5) % 4}}
    boxes = {"b": {"xyxy": np.array([[0, 0, 3, 3], [1, 1, 4, 5]]), "image_index": np.array([0, 2]),
                   "class_id": np.array([1, 2])}}
    got = gm.write_dump(tmp_path / "t", x, key="k", masks=masks, boxes=boxes, draw_boxes=True, device="test",
                        viewer=False)
    want = gm.write_dump(tmp_path / "c", x, key="k", masks=masks, boxes=boxes, draw_boxes=True, device="cpu",
                         viewer=False)
    assert got == want  # same paths, hashes and JSON: the work was the CPU's, through the third backend
    assert {"normalize", "mask_stats", "draw_outlines", "encode", "to_host", "chunk_bytes"} <= set(rec.calls)


def test_a_registered_backend_is_reachable_through_the_environment(third, monkeypatch):
    rec, _ = third
    monkeypatch.setenv("GPU_MEDIA_DEVICE", "test")
    assert B.resolve_device("auto") == "test"
    gm.encode(np.zeros((1, 2, 2, 3), np.uint8))
    assert rec.calls == ["encode"]


def test_a_loader_returning_a_non_backend_is_refused():
    B.register_backend("broken", lambda: types.SimpleNamespace(name="broken", xp=np))
    try:
        with pytest.raises(TypeError, match="does not satisfy gpu_media.backend.Backend"):
            B.get_backend("broken")
    finally:
        B.unregister_backend("broken")
    B.register_backend("misnamed", lambda: cpu_fallback)  # its name is "cpu"
    try:
        with pytest.raises(TypeError, match="its name is not 'misnamed'"):
            B.get_backend("misnamed")
    finally:
        B.unregister_backend("misnamed")


def test_a_loader_may_refuse_with_a_device_error():
    def loader():
        raise gm.DeviceError("device='npu' needs an NPU")

    B.register_backend("npu", loader)
    try:
        with pytest.raises(gm.DeviceError, match="needs an NPU"):
            gm.normalize(np.zeros((1, 2, 2, 3), np.uint8), device="npu")
    finally:
        B.unregister_backend("npu")


# ---- callers use declared members only -----------------------------------------------------------

#: expressions that hold a backend in gpu_media's modules
BACKEND_EXPRS = {"be", "backend", "plan.backend"}


def _backend_expr(node: ast.AST) -> bool:
    text = ast.unparse(node)
    return text in BACKEND_EXPRS or text.startswith("get_backend(")


def _gpu_media_sources():
    for dirpath, dirnames, files in os.walk(os.path.join(ROOT, "gpu_media")):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for f in sorted(files):
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                with open(path, encoding="utf-8") as fh:
                    yield os.path.relpath(path, ROOT), ast.parse(fh.read())


def backend_misuse(tree: ast.AST) -> list[str]:
    """hasattr/getattr on a backend, and attributes of a backend that the protocol does not declare."""
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("hasattr", "getattr") \
                and node.args and _backend_expr(node.args[0]):
            bad.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Attribute) and _backend_expr(node.value) and node.attr not in MEMBERS:
            bad.append(f"line {node.lineno}: {ast.unparse(node)} is not a member of Backend")
    return bad


def test_the_misuse_finder_finds_misuse():
    tree = ast.parse("hasattr(be, 'chunk_bytes')\ngetattr(plan.backend, 'name', 'cpu')\nbackend.extra()\n"
                     "get_backend(dev).encode(x)\nbe.normalize(x)\n")
    assert len(backend_misuse(tree)) == 3


def test_no_backend_probing_in_gpu_media():
    """dump/ and the stages call declared members (``chunk_bytes()``, ``name``, ``xp``, ``to_host``, ...) only."""
    found = {path: backend_misuse(tree) for path, tree in _gpu_media_sources()}
    assert not any(found.values()), {p: b for p, b in found.items() if b}
    dump = dict(_gpu_media_sources())[os.path.join("gpu_media", "dump", "pipeline.py")]
    used = {n.attr for n in ast.walk(dump) if isinstance(n, ast.Attribute) and _backend_expr(n.value)}
    assert {"chunk_bytes", "name", "encode"} <= used  # the finder does see dump's backend calls
