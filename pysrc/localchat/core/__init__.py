"""The pure core: standard library only, no `js`, `pyodide` or `pyscript` (a test checks)."""
