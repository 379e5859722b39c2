"""Adapters: the only code that touches the JS FFI (`js`, `pyodide`, `pyscript`).

They convert JS values to plain Python on the way in (no JsProxy is kept outside an
adapter) and Python values to JS objects on the way out.
"""
