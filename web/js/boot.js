// Boot: the part of LocalChat that runs before Python is ready.
//
// Owns: the early composer (typing works from first paint; a send before Python is up
// is held and shown as "Starting…"), loading the JS bridges Python calls, registering
// the service worker, and plain-words messages when something fails before Python can
// speak (a missing or damaged vendored file, Python failing to start).
// Side effects: sets window.localchat = {boot, pyodide, bridges}; starts Pyodide (handed to
// PyScript by js/interpreter.js); registers ./sw.js.

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

const RELOAD_ADVICE =
  "Reload the page. If this keeps happening, the site's files are incomplete: " +
  "rebuild and serve them again (make serve). Your saved conversations are not affected.";

// The modules the bridges are made of: checked one by one when they fail to load.
const BRIDGE_FILES = ["js/db-bridge.js", "js/engine-bridge.js", "js/download-bridge.js",
                      "js/tab-sync.js", "vendor/dexie/dexie.mjs"];

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
  try {
    const [db, engine, downloads] = await Promise.all([
      import("./db-bridge.js"),
      import("./engine-bridge.js"),
      import("./download-bridge.js"),
    ]);
    // Start the slow, independent parts of the app's start-up now, while Pyodide
    // loads: the GPU probe and opening IndexedDB. Python awaits the same promises
    // (both functions return the first call's promise), so nothing runs twice.
    engine.probeGpu(location.search);
    db.open().catch(() => {}); // a failure reaches Python when it asks
    return { db, engine, downloads };
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
    if (document.body.dataset.ready !== "true" && !document.querySelector("[data-boot-error]")) {
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
window.localchat = { boot, pyodide: startPython(), bridges: loadBridges() };
// Python awaits these promises; keep a rejection from also being reported as unhandled.
window.localchat.pyodide.catch(() => {});
window.localchat.bridges.catch(() => {});
registerServiceWorker();
