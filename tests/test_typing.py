"""The public API is typed and documented by example.

* Every public function (and public method of a public class) of the public modules
  has an annotation on every parameter and on its return (``py.typed`` promises it).
* Every function of :data:`EXAMPLE_MODULES` has at least one runnable ``>>>`` example
  in its docstring; ``python -m pytest`` runs them (``--doctest-modules``, see the
  root ``conftest.py``), so an example that stops matching the code fails the suite.

"Public" means: a module's ``__all__`` when it has one, else every name without a
leading underscore that the module itself defines (not what it imports).
"""

from __future__ import annotations

import importlib
import inspect
import os
import types

import pytest

import gpu_media

#: The modules whose public functions are API (kernel launchers, GPU-only wrappers and
#: readers of GPU libraries are left out: they are imported only on a GPU machine).
PUBLIC_MODULES = [
    "gpu_media",
    "gpu_media.normalize",
    "gpu_media.masks",
    "gpu_media.boxes",
    "gpu_media.encode",
    "gpu_media.dump",
    "gpu_media.dump.options",
    "gpu_media.dump.layout",
    "gpu_media.dump.index",
    "gpu_media.dump.pipeline",
    "gpu_media.dump.finish",
    "gpu_media.viewer",
    "gpu_media.checks",
    "gpu_media.codecs",
    "gpu_media.backend",
    "gpu_media.fileio",
    "gpu_media.errors",
    "gpu_media.wandb_compat",
    "gpu_media.warmup",
    "gpu_media.formats.npz",
    "gpu_media.formats.coco",
    "gpu_media.formats.shards",
    "gpu_media.eval",
    "gpu_media.eval.coco",
    "gpu_media.eval.confusion",
    "gpu_media.storage",
    "gpu_media.ray",
    "gpu_media.cli",
    "cpu_fallback",
    "cpu_fallback.normalize",
    "cpu_fallback.masks",
    "cpu_fallback.boxes",
    "cpu_fallback.encode",
]

#: Modules every public function of which shows a runnable example (but :data:`NO_EXAMPLE`):
#: all of :data:`PUBLIC_MODULES` but the package (its functions are the stage modules'),
#: the errors, and the modules that need a server, a cluster or a console (storage, ray, cli).
EXAMPLE_MODULES = [m for m in PUBLIC_MODULES
                   if m not in ("gpu_media", "gpu_media.errors", "gpu_media.storage", "gpu_media.ray", "gpu_media.cli")]

#: Public functions without an example, and why.
NO_EXAMPLE = {
    "gpu_media.viewer.view": "serves until Ctrl-C (tests/test_viewer.py runs it)",
}


def _public_names(mod: types.ModuleType) -> list[str]:
    names = getattr(mod, "__all__", None)
    if names is not None:
        return list(names)
    return [n for n, obj in vars(mod).items()
            if not n.startswith("_") and getattr(obj, "__module__", None) == mod.__name__]


def _methods(cls: type):
    """Public methods (and properties) a class body defines, plus a hand-written ``__init__``."""
    generated_init = hasattr(cls, "__dataclass_fields__") or hasattr(cls, "_fields")  # dataclass, NamedTuple
    for name, attr in vars(cls).items():
        if name.startswith("_") and not (name == "__init__" and not generated_init):
            continue
        if name == "__init__" and getattr(attr, "__qualname__", "") != f"{cls.__qualname__}.__init__":
            continue  # typing.Protocol's stand-in
        if isinstance(attr, property):
            attr = attr.fget
        elif isinstance(attr, (staticmethod, classmethod)):
            attr = attr.__func__
        if inspect.isfunction(attr):
            yield f"{cls.__qualname__}.{name}", attr, not isinstance(vars(cls)[name], staticmethod)


def public_functions(module_names: list[str], *, methods: bool = True):
    """``(qualified name, function, is_method)`` of every public function of the modules."""
    seen = set()
    for mod_name in module_names:
        mod = importlib.import_module(mod_name)
        for name in _public_names(mod):
            obj = getattr(mod, name)
            if inspect.isfunction(obj) and id(obj) not in seen:
                seen.add(id(obj))
                yield f"{obj.__module__}.{obj.__qualname__}", obj, False
            elif methods and inspect.isclass(obj) and obj.__module__.split(".")[0] in ("gpu_media", "cpu_fallback"):
                for qual, fn, is_method in _methods(obj):
                    if id(fn) not in seen:
                        seen.add(id(fn))
                        yield f"{obj.__module__}.{qual}", fn, is_method


def missing_annotations(fn, is_method: bool) -> list[str]:
    """Names of the parameters without an annotation, plus "return" when the return has none."""
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    if is_method and params and params[0].name in ("self", "cls"):
        params = params[1:]
    missing = [p.name for p in params if p.annotation is inspect.Parameter.empty]
    if sig.return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


def has_example(fn) -> bool:
    return any(line.lstrip().startswith(">>> ") for line in (fn.__doc__ or "").splitlines())


def test_the_walk_finds_the_api():
    names = {q for q, _, _ in public_functions(PUBLIC_MODULES)}
    for expected in ("gpu_media.normalize.normalize", "gpu_media.encode.encode", "gpu_media.backend.get_backend",
                     "gpu_media.backend.Backend.encode", "gpu_media.codecs.Codec.spellings",
                     "gpu_media.errors.MediaError.__init__", "cpu_fallback.normalize.normalize",
                     "gpu_media.wandb_compat.to_wandb", "gpu_media.formats.npz.load_npz"):
        assert expected in names
    assert not any(q.rsplit(".", 1)[-1].startswith("_") and not q.endswith("__init__") for q in names)


def test_every_public_function_is_annotated():
    bad = {q: m for q, fn, is_method in public_functions(PUBLIC_MODULES) if (m := missing_annotations(fn, is_method))}
    assert not bad, f"public functions with unannotated parameters or returns: {bad}"


def test_the_annotation_check_can_fail():
    def half(x, *, y: int = 0):
        return x

    class K:
        def m(self, a: int) -> int:
            return a

    assert missing_annotations(half, False) == ["x", "return"]
    assert missing_annotations(K.m, True) == []


def test_the_package_ships_py_typed():
    assert os.path.isfile(os.path.join(os.path.dirname(gpu_media.__file__), "py.typed"))


@pytest.mark.parametrize("module", EXAMPLE_MODULES)
def test_every_public_function_has_an_example(module):
    missing = [q for q, fn, _ in public_functions([module], methods=False)
               if not has_example(fn) and q not in NO_EXAMPLE]
    assert not missing, f"public functions without a '>>>' example in their docstring: {missing}"


def test_every_function_of_the_package_namespace_has_an_example():
    functions = [name for name in gpu_media.__all__ if inspect.isfunction(getattr(gpu_media, name))]
    assert {"normalize", "validate_masks", "draw_boxes", "encode", "write_dump", "to_wandb"} <= set(functions)
    missing = [name for name in functions if not has_example(getattr(gpu_media, name))]
    assert not missing, f"functions of gpu_media.__all__ without a '>>>' example: {missing}"


def test_the_example_check_can_fail():
    def documented():
        """Do nothing.

        Examples:
            >>> documented()
        """

    def undocumented():
        """Do nothing (no example)."""

    assert has_example(documented) and not has_example(undocumented)
