// Boot: the part of LocalChat that runs before Python is ready.
//
// Owns: the early composer (typing works from first paint; a send before Python is up
// is held and shown as "Starting…"), checking that the browser lets the site store data,
// starting PyScript, loading the JS bridges Python calls, registering the service worker,
// plain-words messages when something fails before Python can speak (a missing or
// damaged vendored file, Python failing to start), and the notices about the database's
// connection, which can come before Python runs (an upgrade blocked by another tab, this
// tab's connection given up to a newer version in another tab).
// Side effects: sets window.localchat = {boot, pyodide, storage, bridges}; starts Pyodide
// (handed to PyScript by js/interpreter.js); imports PyScript (vendor/pyscript/core.js)
// once storage is checked, with a memory-only IndexedDB stand-in if the browser refuses
// storage (js/memory-idb.js); registers ./sw.js.

const BOOT_TIMEOUT_MS = 60_000;

function showBootError(title, detail, action) {
  console.error(`LocalChat: ${title} ${detail}`);
  const area = document.getElementById("notice-area");
  if (!area || area.querySelector(`[data-boot-error="${CSS.escape(title)}"]`)) return;
  const box = document.createElement("div");
  box.className = "notice notice-error";
  box.setAttribute("role", "alert");
  box.dataset.bootError = title;
  const h = document.createElement("strong");
  h.textContent = title;
  const p = document.createElement("p");
  p.textContent = detail;
  const a = document.createElement("p");
  a.textContent = action;
  box.append(h, p, a);
  area.append(box);
  const status = document.getElementById("composer-status");
  if (status) status.textContent = "LocalChat could not start.";
}

// Notices about the database connection (not failures: no console error). One at a
// time, in their own box, so the app's own notices (Python's) are left alone.
function showStoreNotice(kind, title, detail, withReload) {
  console.warn(`LocalChat: ${title}`);
  const area = document.getElementById("notice-area");
  if (!area) return;
  clearStoreNotice();
  const box = document.createElement("div");
  box.className = "notice notice-warning";
  box.setAttribute("role", "alert");
  box.dataset.storeNotice = kind;
  const h = document.createElement("strong");
  h.textContent = title;
  const p = document.createElement("p");
  p.textContent = detail;
  box.append(h, p);
  if (withReload) {
    const reload = document.createElement("button");
    reload.type = "button";
    reload.className = "header-button";
    reload.textContent = "Reload";
    reload.addEventListener("click", () => location.reload());
    box.append(reload);
  }
  area.append(box);
}

function clearStoreNotice() {
  for (const node of document.querySelectorAll("[data-store-notice]")) node.remove();
}

// db-bridge.js announces the connection's changes as document events.
function watchStore() {
  document.addEventListener("localchat:store-blocked", () => {
    showStoreNotice("blocked", "LocalChat was updated: close its other tabs to continue.",
      "Another LocalChat tab or window is still open with the previous version, so your " +
      "saved conversations can't be brought up to date yet. This tab continues by itself " +
      "as soon as the other ones are closed; nothing is lost.", false);
  });
  document.addEventListener("localchat:store-open", clearStoreNotice);
  document.addEventListener("localchat:store-failed", clearStoreNotice);
  document.addEventListener("localchat:store-closed", () => {
    showStoreNotice("closed", "LocalChat was updated in another tab.",
      "This tab let go of your saved conversations so the update could finish; everything " +
      "saved so far is kept. Until you reload, nothing new in this tab is saved.", true);
  });
}

// Whether this browser lets the site store data in IndexedDB. Resolves (never rejects)
// to {usable: true}, or {usable: false, name, message} when IndexedDB is missing or
// refuses to open (private modes, site data blocked). The check opens LocalChat's own
// database at the version this build needs, first thing (before Pyodide's long start-up
// tasks take the main thread), and never changes it: an upgrade it would start is
// aborted (db-bridge.js's Dexie does the real one). So it also sees at once when the
// upgrade is blocked by another tab holding an older version open, and says so (the
// same notice as db-bridge.js's); the request then waits, and is aborted in its turn.
// LocalChat's database is opened in parallel (db-bridge.js), and consults the verdict
// only if that open fails.
const DB_NAME = "localchat";
const DB_IDB_VERSION = 20; // Dexie stores its schema version × 10 (a unit test checks)
const STORAGE_CHECK_TIMEOUT_MS = 3000; // a slow disk must not hold the start-up

function checkStorage() {
  const refused = (err, fallback) => ({
    usable: false,
    name: (err && err.name) || fallback,
    message: (err && err.message) || String(err),
  });
  let factory;
  try {
    factory = globalThis.indexedDB;
  } catch (err) { // some browsers throw SecurityError on merely reading it
    return Promise.resolve(refused(err, "SecurityError"));
  }
  if (!factory) {
    return Promise.resolve({ usable: false, name: "MissingAPIError",
                             message: "IndexedDB is not available in this browser window." });
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ usable: true }), STORAGE_CHECK_TIMEOUT_MS);
    const done = (verdict) => {
      clearTimeout(timer);
      resolve(verdict);
    };
    let request;
    let upgrading = false;
    try {
      request = factory.open(DB_NAME, DB_IDB_VERSION);
    } catch (err) {
      done(refused(err, "SecurityError"));
      return;
    }
    request.onupgradeneeded = () => { // a first visit, or an older database: not ours to do
      upgrading = true;
      request.transaction.abort();
    };
    request.onblocked = () => { // storage works; the upgrade waits for another tab
      document.dispatchEvent(new CustomEvent("localchat:store-blocked"));
      done({ usable: true });
    };
    request.onsuccess = () => { // already at this version: nothing to do
      request.result.close();
      done({ usable: true });
    };
    request.onerror = (event) => {
      event.preventDefault();
      const err = request.error;
      // An aborted upgrade, or a database newer than this build (db-bridge.js reports
      // that one): storage works either way.
      const works = upgrading || (err && err.name === "VersionError");
      done(works ? { usable: true } : refused(err, "UnknownError"));
    };
  });
}

// PyScript caches its packages and files in IndexedDB and cannot start without it, so
// it is imported once storage is checked; when the browser refuses storage, PyScript
// gets a memory-only stand-in and the app starts anyway (and says why nothing is saved).
async function startPyScript(storage) {
  const verdict = await storage;
  // Known to db-bridge.js from now on, synchronously (before any stand-in is installed).
  window.localchat.storageVerdict = verdict;
  try {
    if (!verdict.usable) {
      console.warn(`LocalChat: storage refused (${verdict.name}: ${verdict.message}); ` +
                   "nothing will be saved in this window.");
      (await import("./memory-idb.js")).installMemoryIndexedDB();
    }
    await import("../vendor/pyscript/core.js");
  } catch (err) {
    const findings = await diagnoseFiles(["vendor/pyscript/core.js", "js/memory-idb.js"]);
    const detail = findings.length ? findings.join(" ") : String((err && err.message) || err);
    showBootError("A file LocalChat needs could not be loaded.", detail, RELOAD_ADVICE);
  }
}

const RELOAD_ADVICE =
  "Reload the page. If this keeps happening, the site's files are incomplete: " +
  "rebuild and serve them again (make serve). Your saved conversations are not affected.";

// The modules the bridges are made of: checked one by one when they fail to load.
const BRIDGE_FILES = ["js/db-bridge.js", "js/engine-bridge.js", "js/download-bridge.js",
                      "js/tabs-bridge.js", "js/tab-sync.js", "vendor/dexie/dexie.mjs"];

async function sha256(buffer) {
  const digest = await crypto.subtle.digest("SHA-256", buffer);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

// Which of the bridge files is missing or differs from this build (the build manifest
// records every file's sha256). Returns plain-words findings, possibly none.
async function diagnoseFiles(files) {
  let hashes = {};
  try {
    const text = await (await fetch("vendor/build.js", { cache: "no-store" })).text();
    hashes = JSON.parse(text.slice(text.indexOf("{"), text.lastIndexOf("}") + 1)).hashes || {};
  } catch (err) {
    return ["vendor/build.js (the build manifest) is missing or damaged."];
  }
  const findings = [];
  for (const file of files) {
    try {
      const response = await fetch(file, { cache: "no-store" });
      if (!response.ok) {
        findings.push(`${file} is missing (HTTP ${response.status}).`);
      } else if (hashes[file] && await sha256(await response.arrayBuffer()) !== hashes[file]) {
        findings.push(`${file} is damaged (its contents don't match this build).`);
      }
    } catch (err) {
      findings.push(`${file} could not be fetched (${err.message}).`);
    }
  }
  return findings;
}

// Load the JS bridges that Python calls. A missing or damaged vendored file (e.g.
// vendor/dexie/dexie.mjs) fails this import: name the file instead of hanging.
async function loadBridges() {
  // The database is opened as soon as its bridge is loaded (before the other bridges and
  // before Pyodide's long start-up task takes the main thread), so that an upgrade
  // blocked by another tab is seen and explained at once. Python awaits the same
  // promise (open() returns the first call's promise), so nothing runs twice.
  const dbBridge = import("./db-bridge.js");
  dbBridge.then((db) => db.open().catch(() => {}), () => {}); // a failure reaches Python
  try {
    const [db, engine, downloads, tabs] = await Promise.all([
      dbBridge,
      import("./engine-bridge.js"),
      import("./download-bridge.js"),
      import("./tabs-bridge.js"),
    ]);
    // The GPU probe is slow and independent of the rest: start it now too.
    engine.probeGpu(location.search);
    return { db, engine, downloads, tabs };
  } catch (err) {
    const findings = await diagnoseFiles(BRIDGE_FILES);
    const detail = findings.length ? findings.join(" ") : String((err && err.message) || err);
    showBootError("A file LocalChat needs could not be loaded.", detail, RELOAD_ADVICE);
    throw err;
  }
}

// Early composer: keep what is typed, hold a send until Python takes over.
function holdEarlySend() {
  const form = document.getElementById("composer");
  const button = document.getElementById("send-button");
  const status = document.getElementById("composer-status");
  const boot = { pendingSend: false, takeOver: null };
  const onSubmit = (event) => {
    event.preventDefault();
    const text = document.getElementById("message").value;
    if (!text.trim()) return;
    boot.pendingSend = true;
    button.textContent = "Starting…";
    button.setAttribute("aria-disabled", "true");
    status.textContent = "Starting… your message will be sent when LocalChat is ready.";
  };
  const onKey = (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  };
  form.addEventListener("submit", onSubmit);
  document.getElementById("message").addEventListener("keydown", onKey);
  // Python calls this once it owns the composer; it returns whether a send was held.
  boot.takeOver = () => {
    form.removeEventListener("submit", onSubmit);
    document.getElementById("message").removeEventListener("keydown", onKey);
    button.textContent = "Send";
    button.removeAttribute("aria-disabled");
    status.textContent = "";
    const held = boot.pendingSend;
    boot.pendingSend = false;
    return held;
  };
  return boot;
}

function watchPythonStart() {
  // PyScript reports Python errors as `py:error`-style messages in the page and
  // console; a failed interpreter download only shows in the console, so keep a watch.
  const timer = setTimeout(() => {
    // Waiting for another tab to close (a blocked upgrade) is explained already.
    if (document.body.dataset.ready !== "true" && !document.querySelector("[data-boot-error]")
        && !document.querySelector("[data-store-notice]")) {
      showBootError("LocalChat is taking unusually long to start.",
        "Python has not finished loading after a minute.", RELOAD_ADVICE);
    }
  }, BOOT_TIMEOUT_MS);
  window.addEventListener("error", (event) => {
    const target = event.target;
    const url = target && (target.src || target.href);
    if (url && document.body.dataset.ready !== "true") {
      showBootError("A file LocalChat needs could not be loaded.", url, RELOAD_ADVICE);
    }
  }, true);
  window.addEventListener("unhandledrejection", (event) => {
    if (document.body.dataset.ready === "true") return;
    const reason = event.reason;
    const text = String((reason && reason.message) || reason);
    if (/pyodide|wasm|python_stdlib|fetch|import/i.test(text)) {
      showBootError("Python could not start.", text, RELOAD_ADVICE);
    }
  });
  return timer;
}

function registerServiceWorker() {
  if (!("serviceWorker" in navigator)) return;
  if (new URLSearchParams(location.search).get("sw") === "off") return;
  // After Python is up, so the precache downloads do not compete with the boot.
  const start = () => navigator.serviceWorker.register("./sw.js").catch((err) => {
    console.warn("LocalChat: offline support unavailable:", err && err.message);
  });
  document.addEventListener("localchat:ready", start, { once: true });
}

// Start Pyodide now, in parallel with PyScript's own loading; js/interpreter.js gives
// PyScript this instance. A failure (e.g. a missing pyodide.asm.wasm) reaches PyScript
// there and is reported like any failed interpreter start.
function startPython() {
  return import("../vendor/pyodide/pyodide.mjs").then((m) => m.loadPyodide());
}

const boot = holdEarlySend();
boot.watchdog = watchPythonStart();
watchStore();
const storage = checkStorage();
window.localchat = { boot, pyodide: startPython(), storage, bridges: loadBridges() };
startPyScript(storage);
// Python awaits these promises; keep a rejection from also being reported as unhandled.
window.localchat.pyodide.catch(() => {});
window.localchat.bridges.catch(() => {});
registerServiceWorker();
