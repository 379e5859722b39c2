// Compile the app's Python to bytecode with the same Pyodide the browser runs, so the
// page imports .pyc files instead of compiling ~4,000 lines of source at every boot.
//
// Reads JSON from stdin: {"dest": "/home/pyodide", "files": {"localchat/x.py": "<source>"}}
// (dest is where PyScript unpacks the app archive, so tracebacks name the real path).
// Writes JSON to stdout: {"localchat/__pycache__/x.cpython-314.pyc": "<base64>", ...}.
// The .pyc files are "unchecked-hash" ones: Python uses them without comparing the
// source's timestamp (an unpacked archive has no meaningful mtimes); the build makes
// both from the same sources, so they cannot disagree.
// Files named in "checked" get "checked-hash" .pyc files instead: Python compares them
// with the source's hash and compiles the source if they differ (for sources another
// program writes at run time: PyScript's own package).
// With "record": ["localchat.core.x", ...] in the request, it also imports those modules
// and writes "localchat/generated_code.bin": the code dataclasses generates for their
// classes, compiled (pysrc/localchat/core/codecache.py), so the page skips that too.
// Usage: node tools/compile_pyc.mjs < request.json > pyc.json (run by tools/build.py).

import { loadPyodide } from "../node_modules/pyodide/pyodide.mjs";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const request = JSON.parse(Buffer.concat(chunks).toString("utf8"));

const pyodide = await loadPyodide({ stdout: () => {}, stderr: (line) => console.error(line) });
for (const [rel, source] of Object.entries(request.files)) {
  const path = `${request.dest}/${rel}`;
  pyodide.FS.mkdirTree(path.slice(0, path.lastIndexOf("/")));
  pyodide.FS.writeFile(path, source, { encoding: "utf8" });
}
pyodide.globals.set("request_dest", request.dest);
pyodide.globals.set("request_files", pyodide.toPy(Object.keys(request.files)));
pyodide.globals.set("request_checked", pyodide.toPy(request.checked || []));
const compiled = pyodide.runPython(`
import importlib.util, py_compile
out = {}
for rel in request_files:
    path = f"{request_dest}/{rel}"
    cfile = importlib.util.cache_from_source(path)
    mode = py_compile.PycInvalidationMode
    py_compile.compile(path, cfile, doraise=True, invalidation_mode=(
        mode.CHECKED_HASH if rel in request_checked else mode.UNCHECKED_HASH))
    out[cfile[len(request_dest) + 1:]] = cfile
list(out.items())
`).toJs();
const result = {};
for (const [rel, cfile] of compiled) {
  result[rel] = Buffer.from(pyodide.FS.readFile(cfile)).toString("base64");
}
if (request.record && request.record.length) {
  pyodide.globals.set("request_record", pyodide.toPy(request.record));
  const table = pyodide.runPython(`
import base64, importlib, sys
sys.path.insert(0, request_dest)
from localchat.core import codecache
hook = codecache.record()
for name in request_record:
    importlib.import_module(name)
base64.b64encode(codecache.compile_table(hook.missed)).decode()
`);
  result[`localchat/${"generated_code.bin"}`] = table;
}
process.stdout.write(JSON.stringify(result));
