"""LocalChat: a private chat app whose logic runs in the browser on Pyodide.

Layers (see DESIGN.md): `core` is standard-library Python, importable and tested in
CPython; `ports` names what the core needs from the outside; `adapters` are the only
modules that touch the JS FFI; `ui` turns state into HTML; `app` wires it all.
"""
