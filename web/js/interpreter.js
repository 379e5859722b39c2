// The interpreter module PyScript loads (pyscript.json "interpreter"): Pyodide, started
// early.
//
// PyScript imports its interpreter only after its own code, its plugins and its config
// have loaded, ~100 ms into a warm boot; boot.js starts Pyodide at once instead (the
// download and the ~1 s start-up are most of a boot), and this module hands PyScript
// that same instance. PyScript sees Pyodide's own API: `version` and `loadPyodide()`.
// Side effects: none of its own (boot.js owns the early start).

import * as pyodideModule from "../vendor/pyodide/pyodide.mjs";

export const version = pyodideModule.version;

// Started by boot.js (window.localchat.pyodide) or, if boot.js did not run, here.
export async function loadPyodide(options = {}) {
  const early = globalThis.localchat && globalThis.localchat.pyodide;
  const pyodide = await (early || pyodideModule.loadPyodide());
  // PyScript's output handlers (console and py-terminal), as loadPyodide would set them.
  if (options.stdout) pyodide.setStdout({ batched: options.stdout });
  if (options.stderr) pyodide.setStderr({ batched: options.stderr });
  // Packages PyScript would have had Pyodide load at start-up (none in pyscript.json
  // today; the app installs its wheels with micropip after boot).
  if (options.packages && options.packages.length) await pyodide.loadPackage(options.packages);
  return pyodide;
}
