"""The pure core, the ports and the views never import the browser-only modules."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "pysrc" / "localchat"
FORBIDDEN = frozenset({"js", "pyodide", "pyscript"})

CORE_FILES = sorted((PACKAGE / "core").rglob("*.py"))
OTHER_PURE_FILES = [PACKAGE / "ports.py", PACKAGE / "ui" / "views.py",
                    PACKAGE / "ui" / "heavy.py"]


def forbidden_imports(source: str) -> list[str]:
    """Absolute imports (statements, __import__, importlib.import_module) of FORBIDDEN."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = (func.id if isinstance(func, ast.Name)
                      else func.attr if isinstance(func, ast.Attribute) else "")
            first = node.args[0]
            if (called in {"__import__", "import_module"} and isinstance(first, ast.Constant)
                    and isinstance(first.value, str)):
                names = [first.value]
        found.extend(name for name in names if name.split(".")[0] in FORBIDDEN)
    return found


@pytest.mark.parametrize("source, expected", [
    ("import js", ["js"]),
    ("import os, pyodide.ffi", ["pyodide.ffi"]),
    ("from pyscript import document", ["pyscript"]),
    ("from pyodide.ffi import create_proxy", ["pyodide.ffi"]),
    ("def f():\n    import js\n", ["js"]),
    ("try:\n    import pyodide\nexcept ImportError:\n    pass\n", ["pyodide"]),
    ("m = __import__('js')", ["js"]),
    ("import importlib\nm = importlib.import_module('pyscript.web')", ["pyscript.web"]),
    ("import jsonschema\nfrom .js import x\nfrom . import pyodide", []),
])
def test_the_checker_finds_browser_imports(source: str, expected: list[str]) -> None:
    assert forbidden_imports(source) == expected


def test_the_core_has_the_expected_modules() -> None:
    names = {path.stem for path in CORE_FILES}
    assert {"__init__", "chat", "conversation", "errors", "progress", "settings",
            "state"} <= names


@pytest.mark.parametrize("path", CORE_FILES + OTHER_PURE_FILES,
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_pure_module_does_not_import_browser_modules(path: Path) -> None:
    assert forbidden_imports(path.read_text(encoding="utf-8")) == []


def test_every_core_module_imports_in_cpython() -> None:
    core = importlib.import_module("localchat.core")
    modules = sorted(info.name for info in pkgutil.iter_modules(core.__path__))
    assert modules, "no core modules found"
    assert {path.stem for path in CORE_FILES if path.stem != "__init__"} == set(modules)
    for name in modules:
        module = importlib.import_module(f"localchat.core.{name}")
        assert module.__name__ == f"localchat.core.{name}"


def test_ports_and_views_import_in_cpython() -> None:
    ports = importlib.import_module("localchat.ports")
    views = importlib.import_module("localchat.ui.views")
    assert hasattr(ports, "ConversationStore")
    assert callable(views.message_html)
