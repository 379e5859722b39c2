"""Small FFI helpers shared by the adapters: awaiting bridge calls and converting values.

Every JS call the adapters await goes through a bridge function (web/js/*-bridge.js)
that rejects only with real `Error`s; `call` turns those into the core's failure types.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pyodide.ffi import (  # type: ignore[import-not-found]
    JsException,
    JsProxy,
    create_once_callable,
    create_proxy,
    to_js,
)

from ..core.errors import EngineFailure, StoreFailure

__all__ = ["call", "create_once_callable", "create_proxy", "js_object", "later", "py_value"]

F = TypeVar("F", EngineFailure, StoreFailure)


def later(ms: int, callback: Callable[[], None]) -> None:
    """Run `callback` once after `ms` (setTimeout); its proxy is freed when it has run."""
    import js  # type: ignore[import-not-found]

    js.setTimeout(create_once_callable(lambda *_: callback()), ms)


def _js_object_from_entries(entries: Any) -> Any:
    import js  # type: ignore[import-not-found]

    return js.Object.fromEntries(entries)


def js_object(value: Any) -> Any:
    """A Python dict/list as plain JS objects/arrays (what IndexedDB and workers accept)."""
    return to_js(value, dict_converter=_js_object_from_entries)


def py_value(value: Any) -> Any:
    """A JS value as plain Python (dicts, lists, str, numbers, None)."""
    if isinstance(value, JsProxy):
        return value.to_py()
    return value


def error_parts(exc: BaseException) -> tuple[str, str]:
    """(name, message) of a JS Error raised into Python."""
    name = getattr(exc, "name", None)
    message = getattr(exc, "message", None)
    if isinstance(name, str) and isinstance(message, str):
        return name, message
    text = str(exc)
    head, sep, rest = text.partition(": ")
    if sep and head.isidentifier():
        return head, rest
    return type(exc).__name__, text


async def call(awaitable: Awaitable[Any], failure: type[F]) -> Any:
    """Await a bridge promise; JS errors become `failure(name, message)`."""
    try:
        return py_value(await awaitable)
    except JsException as exc:
        name, message = error_parts(exc)
        raise failure(name, message) from None
