// The order in which importing a package runs its modules, recorded in the same Pyodide
// the browser runs, so that the page can import them one module per task (after the
// app is ready, no task may take long; importing micropip or markdown-it whole is one
// 150-400 ms task). Each module is listed once it has finished importing (dependencies
// first; a package after the submodules its __init__ imports).
// Usage: node tools/import_order.mjs <top,top...> <wheel.whl>... > order.json
// Writes JSON to stdout: {"<top>": ["<module>", ...], ...} (run by tools/build.py).

import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { loadPyodide } from "../node_modules/pyodide/pyodide.mjs";

const [tops, ...wheels] = process.argv.slice(2);
const pyodide = await loadPyodide({ stdout: () => {}, stderr: (line) => console.error(line) });
pyodide.FS.mkdirTree("/tmp/wheels");
for (const wheel of wheels) {
  pyodide.FS.writeFile(`/tmp/wheels/${basename(wheel)}`, readFileSync(wheel));
}
pyodide.globals.set("tops", pyodide.toPy(tops.split(",")));
const order = pyodide.runPython(`
import builtins, json, os, sys, zipfile
for name in sorted(os.listdir("/tmp/wheels")):
    zipfile.ZipFile(f"/tmp/wheels/{name}").extractall("/tmp/site")
sys.path.insert(0, "/tmp/site")
result = {}
original = builtins.__import__
for top in tops:
    order = []
    def recording(name, globals=None, locals=None, fromlist=(), level=0):
        before = set(sys.modules)
        module = original(name, globals, locals, fromlist, level)
        order.extend(k for k in list(sys.modules) if k not in before and k not in order)
        return module
    builtins.__import__ = recording
    try:
        __import__(top)
    finally:
        builtins.__import__ = original
    result[top] = order + ([top] if top not in order else [])
json.dumps(result)
`);
process.stdout.write(order);
