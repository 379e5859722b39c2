"""Importing a package one module at a time, with a pause between modules.

Python imports a package whole in one go: `import micropip` runs all its ~60 modules in
one call (a 250-400 ms task in the page), and so does `import markdown_it`. After the
page is ready no task may be that long, so the app imports them module by module, in
the order a plain import finishes them (recorded at build time: tools/import_order.mjs),
and gives the browser a turn after each one (`pause`).

Importing a submodule first runs its parent package's `__init__`, which usually imports
everything. So each package is put in `sys.modules` before its `__init__` runs (created
from its spec, as the import system would), its submodules are imported under it one by
one, and its `__init__` runs when the order reaches the package itself — in the same
module object, so `import markdown_it` afterwards is the same module with the same
attributes a plain import gives. Anything that goes wrong falls back to the plain
import (one long task, but never a broken package).

Side effects: imports modules and registers them in `sys.modules`.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Awaitable, Callable, Collection, Iterable
from types import ModuleType

__all__ = ["import_in_slices"]


async def import_in_slices(order: Iterable[str], pause: Callable[[], Awaitable[None]],
                           lazy: Collection[str] = ()) -> None:
    """Import every module of `order` (dependencies first, packages after their
    submodules), awaiting `pause()` after each one that ran. A top-level module named in
    `lazy` is only registered: it runs when one of its attributes is first used, if ever
    (`ipaddress`, which `urllib.parse` imports for the rare bracketed host, is a 20-80 ms
    module)."""
    waiting: dict[str, ModuleType] = {}  # packages in sys.modules whose __init__ hasn't run
    try:
        for name in order:
            if name in lazy and name not in sys.modules and "." not in name:
                _register_lazily(name)
            elif name in waiting:
                _run_init(waiting.pop(name))
            elif name in sys.modules:
                continue
            else:
                _placeholders_for_parents(name, waiting)
                importlib.import_module(name)
            await pause()
    except Exception:
        _abandon(waiting)
        raise
    # Packages the order never named (it was recorded for another version): run them now,
    # innermost first, so that each package is complete.
    for name in sorted(waiting, key=lambda n: n.count("."), reverse=True):
        _run_init(waiting.pop(name))


class _Deferred(ModuleType):
    """A registered module whose code has not run: the first attribute it lacks runs it,
    in this same module object (importlib.util.LazyLoader would run it already when an
    `import` statement reads its `__spec__`)."""

    def __getattr__(self, attr: str) -> object:
        if attr == "__path__":  # asked by the import system of any module: not a use
            raise AttributeError(attr)
        self.__class__ = ModuleType  # type: ignore[assignment]
        spec = self.__spec__
        assert spec is not None and spec.loader is not None
        spec.loader.exec_module(self)
        return getattr(self, attr)


def _register_lazily(name: str) -> None:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is not None:
        importlib.import_module(name)  # nothing to defer (or a package): import as usual
        return
    module = importlib.util.module_from_spec(spec)
    module.__class__ = _Deferred
    sys.modules[name] = module


def _placeholders_for_parents(name: str, waiting: dict[str, ModuleType]) -> None:
    parts = name.split(".")
    for depth in range(1, len(parts)):
        parent = ".".join(parts[:depth])
        if parent in sys.modules:
            continue
        spec = importlib.util.find_spec(parent)
        if spec is None or spec.submodule_search_locations is None:
            raise ImportError(f"{parent} is not a package", name=parent)
        if spec.loader is None or spec.origin is None:  # a namespace package: no code to run
            importlib.import_module(parent)
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules[parent] = module
        waiting[parent] = module
        if depth > 1:  # as the import system does: the child is an attribute of its parent
            setattr(sys.modules[".".join(parts[:depth - 1])], parts[depth - 1], module)


def _run_init(module: ModuleType) -> None:
    spec = module.__spec__
    assert spec is not None and spec.loader is not None
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(spec.name, None)
        raise


def _abandon(waiting: dict[str, ModuleType]) -> None:
    """After a failure: forget every module under a package whose __init__ never ran, so
    that a plain import starts them afresh."""
    for name in waiting:
        for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            sys.modules.pop(loaded, None)
    waiting.clear()
