"""LocalChat: a private chat app whose logic runs in the browser on Pyodide.

Layers (see DESIGN.md): `core` is standard-library Python, importable and tested in
CPython; `ports` names what the core needs from the outside; `adapters` are the only
modules that touch the JS FFI; `ui` turns state into HTML; `app` wires it all.
"""

from pathlib import Path as _Path

from .core import codecache as _codecache

# Before any of the app's dataclasses is defined: their generated methods come compiled
# from the build (core/codecache.py), when the archive carries them.
_codecache.install(_Path(__file__).with_name(_codecache.FILE_NAME))
