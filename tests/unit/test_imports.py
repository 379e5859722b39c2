"""core/imports.py: a package imported one module per step is the same package a plain
import gives, with a pause after each module, and a failure leaves nothing half-made."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from localchat.core.imports import import_in_slices

PACKAGE = {
    "slicedpkg/__init__.py": "from .main import answer\nfrom . import sub\nINIT_RAN = True\n",
    "slicedpkg/util.py": "VALUE = 41\n",
    "slicedpkg/main.py": "from .util import VALUE\nfrom .sub import bump\n"
                         "def answer():\n    return bump(VALUE)\n",
    "slicedpkg/sub/__init__.py": "from .leaf import bump\n",
    "slicedpkg/sub/leaf.py": "def bump(n):\n    return n + 1\n",
}
# As a plain import finishes them (what tools/import_order.mjs records).
ORDER = ["slicedpkg.util", "slicedpkg.sub.leaf", "slicedpkg.sub", "slicedpkg.main",
         "slicedpkg"]


@pytest.fixture
def package(tmp_path: Path) -> Iterator[Path]:
    for rel, text in PACKAGE.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in [m for m in sys.modules if m.split(".")[0] == "slicedpkg"]:
        del sys.modules[name]


def _run(order: list[str]) -> list[set[str]]:
    """Import in slices; what had been imported at each pause."""
    seen: list[set[str]] = []

    async def pause() -> None:
        seen.append({m for m in sys.modules if m.split(".")[0] == "slicedpkg"})

    asyncio.run(import_in_slices(order, pause))
    return seen


def test_one_module_per_pause_and_the_package_is_whole(package: Path) -> None:
    seen = _run(ORDER)
    assert len(seen) == len(ORDER)
    # Each pause came after exactly one more module of the package ran.
    assert [len(s) for s in seen] == [2, 4, 4, 5, 5]
    import slicedpkg

    assert slicedpkg.INIT_RAN and slicedpkg.answer() == 42
    assert slicedpkg.sub.bump(1) == 2 and slicedpkg.main.VALUE == 41
    assert sys.modules["slicedpkg"] is slicedpkg


def test_an_order_that_misses_modules_still_ends_with_whole_packages(package: Path) -> None:
    _run(["slicedpkg.sub.leaf"])  # recorded for another version, say
    import slicedpkg

    assert slicedpkg.INIT_RAN and slicedpkg.answer() == 42


def test_a_failing_module_leaves_nothing_half_imported(package: Path) -> None:
    (package / "slicedpkg" / "main.py").write_text("raise RuntimeError('broken')\n")
    with pytest.raises(RuntimeError):
        _run(ORDER)
    assert not [m for m in sys.modules if m.split(".")[0] == "slicedpkg"]
    (package / "slicedpkg" / "main.py").write_text(PACKAGE["slicedpkg/main.py"])
    import importlib

    importlib.invalidate_caches()
    import slicedpkg  # a plain import afterwards starts afresh and works

    assert slicedpkg.answer() == 42


def test_a_lazy_module_runs_only_when_first_used(tmp_path: Path) -> None:
    (tmp_path / "lazymod.py").write_text("import sys\nsys.lazymod_runs += 1\nVALUE = 7\n")
    (tmp_path / "usesit.py").write_text("import lazymod\ndef get():\n    return lazymod.VALUE\n")
    sys.path.insert(0, str(tmp_path))
    sys.lazymod_runs = 0  # type: ignore[attr-defined]
    try:
        pauses: list[int] = []

        async def pause() -> None:
            assert "lazymod" in sys.modules
            pauses.append(sys.lazymod_runs)  # type: ignore[attr-defined]

        asyncio.run(import_in_slices(["lazymod", "usesit"], pause, lazy={"lazymod"}))
        assert pauses == [0, 0]  # registered, imported by usesit, never run
        import usesit

        assert usesit.get() == 7  # the first use runs it, once
        assert usesit.get() == 7 and sys.lazymod_runs == 1  # type: ignore[attr-defined]
    finally:
        del sys.lazymod_runs  # type: ignore[attr-defined]
        sys.path.remove(str(tmp_path))
        for name in ("lazymod", "usesit"):
            sys.modules.pop(name, None)
