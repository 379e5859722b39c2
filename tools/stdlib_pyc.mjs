// Pyodide's standard library with its bytecode: python_stdlib.zip as npm ships it holds
// only .py sources, so every standard-library import in the page compiles its module first
// (tarfile: ~100 ms, ipaddress: ~60 ms, and Pyodide's own start-up imports), at every
// visit. This adds, next to each `x.py`, the `x.pyc` that zipimport prefers, compiled by
// the same Pyodide, as "unchecked-hash" files (used as they are: the zip's timestamps mean
// nothing). The sources stay, for tracebacks. Entries keep their order and dates.
// Usage: node tools/stdlib_pyc.mjs <python_stdlib.zip> <out.zip> (run by tools/build.py).

import { readFileSync, writeFileSync } from "node:fs";
import { loadPyodide } from "../node_modules/pyodide/pyodide.mjs";

const [source, dest] = process.argv.slice(2);
const pyodide = await loadPyodide({ stdout: () => {}, stderr: (line) => console.error(line) });
pyodide.FS.writeFile("/tmp/in.zip", readFileSync(source));
pyodide.runPython(`
import importlib.util, sys, zipfile
from importlib._bootstrap_external import _code_to_hash_pyc

with zipfile.ZipFile("/tmp/in.zip") as zin, \\
        zipfile.ZipFile("/tmp/out.zip", "w", zipfile.ZIP_DEFLATED) as zout:
    names = set(zin.namelist())
    for info in zin.infolist():
        data = zin.read(info)
        zout.writestr(info, data)
        if not info.filename.endswith(".py") or info.filename + "c" in names:
            continue
        # The path zipimport gives the module (its __file__), so tracebacks name it.
        home = f"/lib/python{sys.version_info.major}{sys.version_info.minor}.zip"
        code = compile(data, f"{home}/{info.filename}", "exec", dont_inherit=True)
        pyc = zipfile.ZipInfo(info.filename[:-3] + ".pyc", info.date_time)
        pyc.compress_type = zipfile.ZIP_DEFLATED
        zout.writestr(pyc, bytes(_code_to_hash_pyc(code, importlib.util.source_hash(data),
                                                   checked=False)))
`);
writeFileSync(dest, pyodide.FS.readFile("/tmp/out.zip"));
