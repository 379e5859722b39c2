"""core/codecache.py: dataclasses run the build's compiled code for the sources it knows."""

from __future__ import annotations

import dataclasses
import importlib.util
import marshal
from collections.abc import Iterator
from pathlib import Path
from types import CodeType

import pytest

from localchat.core import codecache


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    before = dataclasses.__dict__.get("exec")
    yield
    if before is None:
        dataclasses.__dict__.pop("exec", None)
    else:
        dataclasses.exec = before  # type: ignore[attr-defined]


def _nested(code: CodeType) -> Iterator[CodeType]:
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield const
            yield from _nested(const)


def _define() -> type:
    @dataclasses.dataclass(frozen=True)
    class Point:
        x: int
        y: int = 2
        tags: tuple[str, ...] = dataclasses.field(default_factory=tuple)

    return Point


def test_recorded_sources_are_run_from_the_table_with_the_same_behaviour(tmp_path: Path) -> None:
    recorder = codecache.record()
    plain = _define()
    recorded = len(recorder.missed)  # one generated source per class (one per method < 3.13)
    assert recorded >= 1
    path = tmp_path / codecache.FILE_NAME
    path.write_bytes(codecache.compile_table(recorder.missed))

    hook = codecache.install(path)
    assert hook is not None
    cached = _define()
    assert (hook.hits, hook.missed) == (recorded, [])
    a, b = plain(1), cached(1)
    assert (repr(a), a == plain(1, 2, ())) == (repr(b), b == cached(1, 2, ()))
    assert cached(1, 3) != cached(1, 2) and hash(cached(1)) == hash(cached(1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.x = 5  # type: ignore[misc]
    # The method's code came from the table, not from compiling the source again.
    table_codes = {id(c) for code in hook.table.values() for c in _nested(code)}
    assert id(cached.__init__.__code__) in table_codes
    assert id(plain.__init__.__code__) not in table_codes


def test_a_source_the_table_lacks_is_compiled_as_before(tmp_path: Path) -> None:
    path = tmp_path / codecache.FILE_NAME
    path.write_bytes(codecache.compile_table(["x = 1\n"]))
    hook = codecache.install(path)
    assert hook is not None
    point = _define()
    assert point(4).y == 2
    assert hook.hits == 0 and len(hook.missed) >= 1


@pytest.mark.parametrize("data", [
    b"",
    b"\x00\x00\r\n" + marshal.dumps({"x": compile("1", "<string>", "exec")}),  # other Python
    importlib.util.MAGIC_NUMBER + b"\xff\x00garbage",
    importlib.util.MAGIC_NUMBER + marshal.dumps(["not", "a", "table"]),
    importlib.util.MAGIC_NUMBER + marshal.dumps({"x = 1": "not code", 3: None}),
])
def test_a_table_for_another_python_or_damaged_is_empty(data: bytes) -> None:
    assert codecache.read_table(data) == {}


def test_no_file_installs_nothing(tmp_path: Path) -> None:
    dataclasses.__dict__.pop("exec", None)
    assert codecache.install(tmp_path / "missing.bin") is None
    assert "exec" not in dataclasses.__dict__
