"""Installs the vendored pure-Python wheels (Markdown rendering) with micropip.

Runs after the app is ready, so it never delays the boot. micropip itself comes from
Pyodide's lock file (whose sha256 the build fixed for the wheel we serve); the wheels
are served by this site next to Pyodide and listed in `localchat/vendored_wheels.json`
by tools/build.py. Nothing is fetched from any index: `deps=False`, URLs only.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import js  # type: ignore[import-not-found]
import pyodide_js  # type: ignore[import-not-found]

from ..core.imports import import_in_slices
from .ffi import later

__all__ = ["import_sliced", "install_vendored_wheels"]

WHEELS_FILE = Path(__file__).resolve().parent.parent / "vendored_wheels.json"
ORDER_FILE = Path(__file__).resolve().parent.parent / "import_order.json"
"""Module import orders recorded at build time (tools/build.py `import_orders`)."""


async def browser_turn() -> None:
    """Let the browser run (input, painting) before going on: a real task boundary
    (setTimeout), which an asyncio step inside one task is not."""
    turn = asyncio.get_event_loop().create_future()
    later(0, lambda: turn.done() or turn.set_result(None))
    await turn


# Imported by urllib.parse for bracketed (IPv6) hosts only, which the site's own URLs
# never have: run on first use instead of as a 20-80 ms task after ready.
LAZY_MODULES = frozenset({"ipaddress"})


async def import_sliced(*packages: str) -> None:
    """Import each of `packages` one module per task (core/imports.py), in the order
    recorded at build time."""
    orders = json.loads(ORDER_FILE.read_text()) if ORDER_FILE.is_file() else {}
    for package in packages:
        await import_in_slices(orders.get(package, [package]), browser_turn, LAZY_MODULES)


async def install_vendored_wheels(site_base: str, names: tuple[str, ...]) -> None:
    """Install the vendored wheels whose file names start with one of `names`."""
    wheels = json.loads(WHEELS_FILE.read_text())
    urls = [f"{site_base}vendor/pyodide/{w['file']}" for w in wheels
            if w["file"].startswith(names)]
    # What Pyodide's package loader imports on its first use (a 200 ms task whole).
    await import_sliced("encodings.cp437", "tarfile", "importlib.metadata")
    await pyodide_js.loadPackage("micropip", js.Object.fromEntries([["checkIntegrity", True]]))
    await import_sliced("micropip")
    import micropip  # type: ignore[import-not-found]

    await micropip.install(urls, deps=False)
