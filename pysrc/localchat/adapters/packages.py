"""Installs the vendored pure-Python wheels (Markdown rendering) with micropip.

Runs after the app is ready, so it never delays the boot. micropip itself comes from
Pyodide's lock file (whose sha256 the build fixed for the wheel we serve); the wheels
are served by this site next to Pyodide and listed in `localchat/vendored_wheels.json`
by tools/build.py. Nothing is fetched from any index: `deps=False`, URLs only.
"""

from __future__ import annotations

import json
from pathlib import Path

import js  # type: ignore[import-not-found]
import pyodide_js  # type: ignore[import-not-found]

__all__ = ["install_vendored_wheels"]

WHEELS_FILE = Path(__file__).resolve().parent.parent / "vendored_wheels.json"


async def install_vendored_wheels(site_base: str, names: tuple[str, ...]) -> None:
    """Install the vendored wheels whose file names start with one of `names`."""
    wheels = json.loads(WHEELS_FILE.read_text())
    urls = [f"{site_base}vendor/pyodide/{w['file']}" for w in wheels
            if w["file"].startswith(names)]
    await pyodide_js.loadPackage("micropip", js.Object.fromEntries([["checkIntegrity", True]]))
    import micropip  # type: ignore[import-not-found]

    await micropip.install(urls, deps=False)
