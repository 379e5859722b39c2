"""The code `dataclasses` writes at import, compiled once at build time instead of at boot.

For every class, `@dataclass` writes the source of its `__init__`, `__repr__`, `__eq__`…
as text and compiles it (one `exec` of generated source per class). In the page,
compiling is the slow part of importing the app: about 40 % of the app's import time,
1-4 ms per class (more on a first visit). The source is the same at every boot, so the
build compiles it once with the same Pyodide (tools/compile_pyc.mjs: `record`) and ships
the code objects in the app archive (`localchat/generated_code.bin`, marshalled, behind
the interpreter's magic number). At boot, `install` lets `dataclasses` look its source up
in that table and run the stored code; a source the table lacks (another Python, an
edited class) is compiled as before. So a stale or damaged table can only cost time.

Side effects: `install`/`record` set `dataclasses.exec` (the module's global shadows the
builtin it calls); nothing else.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import marshal
from pathlib import Path
from types import CodeType
from typing import Any

__all__ = ["FILE_NAME", "GeneratedCode", "compile_table", "install", "read_table", "record"]

FILE_NAME = "generated_code.bin"  # beside localchat/__init__.py in the app archive

INSTALLED: GeneratedCode | None = None


class GeneratedCode:
    """An `exec` for `dataclasses` that runs the table's code for a source it knows."""

    def __init__(self, table: dict[str, CodeType]) -> None:
        self.table = table
        self.hits = 0
        self.missed: list[str] = []  # generated sources compiled here (the build records them)

    def exec(self, source: Any, globals_: Any = None, locals_: Any = None, /) -> None:
        code = self.table.get(source) if type(source) is str else None
        if code is None:
            if type(source) is str:
                self.missed.append(source)
            exec(source, globals_, locals_)  # dataclasses' own generated code
        else:
            self.hits += 1
            exec(code, globals_, locals_)


def compile_table(sources: list[str]) -> bytes:
    """The file for `sources`: each compiled as `exec(source)` would (filename "<string>",
    no inherited future flags), behind this interpreter's magic number."""
    table = {s: compile(s, "<string>", "exec", dont_inherit=True) for s in sources}
    return importlib.util.MAGIC_NUMBER + marshal.dumps(table)


def read_table(data: bytes) -> dict[str, CodeType]:
    """The table in `data`, or an empty one if it is not for this interpreter or damaged."""
    magic = importlib.util.MAGIC_NUMBER
    if not data.startswith(magic):
        return {}
    try:
        table = marshal.loads(data[len(magic):])
    except (ValueError, EOFError, TypeError):
        return {}
    if not isinstance(table, dict):
        return {}
    return {k: v for k, v in table.items() if isinstance(k, str) and isinstance(v, CodeType)}


def _use(hook: GeneratedCode) -> GeneratedCode:
    global INSTALLED
    INSTALLED = hook
    dataclasses.exec = hook.exec  # type: ignore[attr-defined]
    return hook


def install(path: Path) -> GeneratedCode | None:
    """Use the table at `path` for dataclasses defined from now on; nothing if there is
    no file (CPython runs of the tests, the build's recording run)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return _use(GeneratedCode(read_table(data)))


def record() -> GeneratedCode:
    """Collect the sources dataclasses compiles from now on (`.missed`), for the build."""
    return _use(GeneratedCode({}))
