// Download bridge: the main-thread side of the download worker, called from Python.
//
// Owns: one DownloaderHandle per createDownloader() call, each driving its own
// dedicated module worker (web/workers/download-worker.js, which never touches the GPU).
// The worker fetches, checks and stores one model file per fetchFile() request, in
// WebLLM's own caches under WebLLM's own keys; this module only passes requests and
// answers between Python and the worker (the message protocol is documented at the top
// of the worker).
//
// The contract with Python: plain JS objects in and out, and **no promise returned here
// ever rejects**. fetchFile resolves with an Outcome ({ok: true, …} or {ok: false, kind,
// …}); the data calls resolve with their answer or an empty one ({}, null, 0, false,
// {error}) when they fail. Requests and options may be Pyodide proxies of dicts and
// lists (converted here); callbacks (onBytes, onCrash) may be Pyodide proxies: they are
// only called.
//
// A crash of the worker (an "error" event) resolves every pending call (fetches with kind
// "aborted", detail "the download worker stopped: …"; data calls with their empty
// answer) and calls onCrash(message) once; the next call starts a fresh worker (bytes
// kept for resumes are lost with the old one). After terminate() the handle is dead: every
// later call resolves at once, as after a crash, and no worker is started again.
//
// Side effects: creates and terminates Web Workers (through them: network requests and
// Cache Storage writes). Module state: none.

const WORKER_URL = new URL("../workers/download-worker.js", import.meta.url);
const DEFAULT_STALL_MS = 30_000;
const DEFAULT_PROGRESS_MS = 100;
const DATA_TIMEOUT_MS = 60_000; // a data call the worker has not answered by then gets its empty answer
const CACHE_NAMES = new Set(["webllm/config", "webllm/wasm", "webllm/model"]);
const CHECKS = new Set(["chat-config", "tensor-cache", "json", "wasm", "bytes"]);

// What each data call answers when it cannot be answered (mirrors the worker's fallbacks).
const EMPTY_ANSWERS = {
  stored: () => ({}),
  readStored: () => null,
  peek: () => null,
  remove: () => 0,
  modelRecord: (detail) => ({ error: detail }),
  hasModelInCache: () => false,
};

/**
 * Create a downloader handle (synchronously; its worker starts on the first call).
 * options: {headers: {name: value} (added to every model-file request; sim only),
 *           stallMs (default 30000: no byte for this long = a stall),
 *           progressMs (default 100: min spacing of onBytes calls per file),
 *           onCrash(message) (the worker died)}.
 */
export function createDownloader(options = {}) {
  return new DownloaderHandle(plain(options) || {});
}

class DownloaderHandle {
  #settings;
  #onCrash;
  #worker = null; // started lazily, again after a crash
  #calls = new Map(); // call number -> {fallback(detail), onBytes, timer, resolve}
  #nextCall = 1;
  #terminated = false;

  constructor({ headers, stallMs, progressMs, onCrash }) {
    this.#settings = {
      headers: plainHeaders(headers),
      stallMs: positiveOr(stallMs, DEFAULT_STALL_MS),
      progressMs: positiveOr(progressMs, DEFAULT_PROGRESS_MS),
    };
    this.#onCrash = onCrash;
  }

  /**
   * Fetch, check and store one file. request: {id, url, cache, check, size, resume,
   * simQuota}; onBytes(received, expected). Resolves with an Outcome; never rejects.
   */
  fetchFile(request, onBytes) {
    const checked = fetchRequest(plain(request));
    if (typeof checked === "string") {
      return Promise.resolve(failedOutcome("invalid", `a malformed request: ${checked}`));
    }
    return this.#call("fetch", { request: checked },
                      (detail) => failedOutcome("aborted", detail), onBytes);
  }

  /**
   * Abort the fetchFile request with this id: it resolves with kind "aborted" (its bytes
   * so far are kept for a resume). Once the last byte has arrived and the file is being
   * checked and stored, a cancel is too late: the request resolves with its real outcome.
   */
  cancel(id) {
    if (this.#worker) this.#worker.postMessage({ type: "cancel", id: String(id) });
  }

  cancelAll() {
    if (this.#worker) this.#worker.postMessage({ type: "cancelAll" });
  }

  /** Of entries [{cache, url}], the stored ones: {url: byte size}. */
  stored(entries) {
    return this.#data("stored", [cacheEntries(entries, "url")]);
  }

  /** The summary of a stored JSON file (check "chat-config"/"tensor-cache"), else null. */
  readStored(cache, url, check) {
    return this.#data("readStored", [String(cache), String(url), String(check)]);
  }

  /** The summary of a same-origin JSON file fetched without storing (only when online). */
  peek(url, check) {
    return this.#data("peek", [String(url), String(check)]);
  }

  /** Delete entries [{cache, url}] or [{cache, prefix}]; resolves with how many went. */
  remove(entries) {
    return this.#data("remove", [cacheEntries(entries, "url", "prefix")]);
  }

  /** {model_id, model, model_lib, base} from appConfig (else WebLLM's prebuilt list), or {error}. */
  modelRecord(modelId, appConfig) {
    return this.#data("modelRecord", [String(modelId), plain(appConfig) || null]);
  }

  /** WebLLM's own hasModelInCache(modelId, appConfig), run in the worker. */
  hasModelInCache(modelId, appConfig) {
    return this.#data("hasModelInCache", [String(modelId), plain(appConfig) || null]);
  }

  /** Stop the worker; pending and later calls resolve as aborted / empty. */
  terminate() {
    if (this.#terminated) return;
    this.#terminated = true;
    this.#stopWorker("the downloader was terminated");
  }

  #data(type, args) {
    return this.#call(type, { args }, EMPTY_ANSWERS[type]);
  }

  /** Send one call to the worker; the promise resolves once, with its answer or fallback. */
  #call(type, body, fallback, onBytes = null) {
    if (this.#terminated) return Promise.resolve(fallback("the downloader was terminated"));
    return new Promise((resolve) => {
      const call = this.#nextCall++;
      const entry = { fallback, onBytes, resolve, timer: null };
      this.#calls.set(call, entry);
      if (type !== "fetch") {
        entry.timer = setTimeout(() => {
          console.warn(`LocalChat: the download worker did not answer ${type}() in time.`);
          this.#settle(call, fallback(`${type}() got no answer`));
        }, DATA_TIMEOUT_MS);
      }
      try {
        this.#ensureWorker().postMessage({ type, call, ...body });
      } catch (err) {
        this.#settle(call, fallback(`the download worker could not be asked: ${describe(err)}`));
      }
    });
  }

  #settle(call, value) {
    const entry = this.#calls.get(call);
    if (!entry) return;
    this.#calls.delete(call);
    clearTimeout(entry.timer);
    entry.resolve(value);
  }

  #ensureWorker() {
    if (this.#worker) return this.#worker;
    const worker = new Worker(WORKER_URL, { type: "module" });
    worker.addEventListener("message", (event) => this.#receive(event.data));
    worker.addEventListener("error", (event) => {
      event.preventDefault();
      const detail = event.message
        ? `${event.message}${event.filename ? ` (${event.filename}:${event.lineno})` : ""}`
        : `its script ${WORKER_URL.pathname} (or a module it imports) could not be loaded`;
      this.#crash(worker, detail);
    });
    worker.addEventListener("messageerror", () => this.#crash(worker, "a message could not be read"));
    worker.postMessage({ type: "init", settings: this.#settings });
    this.#worker = worker;
    return worker;
  }

  #receive(message) {
    if (!message) return;
    if (message.type === "bytes") {
      const entry = this.#calls.get(message.call);
      if (entry && entry.onBytes) callSafely(entry.onBytes, message.received, message.expected);
    } else if (message.type === "done") {
      this.#settle(message.call, message.value);
    }
  }

  #crash(worker, detail) {
    if (worker !== this.#worker) return; // an old worker's late event
    const message = `The download worker stopped: ${detail}.`;
    console.warn("LocalChat:", message);
    this.#stopWorker(`the download worker stopped: ${detail}`);
    if (this.#onCrash) callSafely(this.#onCrash, message);
  }

  #stopWorker(detail) {
    if (this.#worker) this.#worker.terminate();
    this.#worker = null;
    for (const [call, entry] of [...this.#calls]) this.#settle(call, entry.fallback(detail));
  }
}

// ---------------------------------------------------------------------------------
// Plain values in, plain values out

/** A JS value from Python (a Pyodide proxy of a dict or list) as plain JS. */
function plain(value) {
  if (value && typeof value.toJs === "function") {
    return value.toJs({ dict_converter: Object.fromEntries, create_pyproxies: false });
  }
  return value;
}

/** The request as the worker needs it, or a string saying what is wrong with it. */
function fetchRequest(request) {
  if (!request || typeof request !== "object") return "not an object";
  const { id, url, cache, check, size, resume, simQuota } = request;
  if (id === undefined || id === null || String(id) === "") return "no id";
  if (typeof url !== "string" || !URL.canParse(url, location.href)) return `bad url ${url}`;
  if (!CACHE_NAMES.has(cache)) return `unknown cache ${cache}`;
  if (!CHECKS.has(check)) return `unknown check ${check}`;
  const length = size === undefined || size === null ? null : Number(size);
  if (length !== null && !(Number.isSafeInteger(length) && length >= 0)) return `bad size ${size}`;
  const quota = plain(simQuota);
  return {
    id: String(id),
    url: new URL(url, location.href).href,
    cache,
    check,
    size: length,
    resume: Boolean(resume),
    simQuota: quota ? { prefix: String(quota.prefix), limit: Number(quota.limit) } : null,
  };
}

/** [{cache, url}] (or with `prefix`) as plain entries; unusable ones are left out. */
function cacheEntries(entries, ...keys) {
  const list = Array.from(plain(entries) || [], plain);
  return list.filter((e) => e && CACHE_NAMES.has(e.cache))
    .map((e) => {
      const key = keys.find((k) => typeof e[k] === "string");
      return key ? { cache: e.cache, [key]: e[key] } : null;
    })
    .filter(Boolean);
}

function plainHeaders(headers) {
  const out = {};
  for (const [name, value] of Object.entries(plain(headers) || {})) out[name] = String(value);
  return out;
}

function positiveOr(value, fallback) {
  const number = Number(value);
  return value !== undefined && value !== null && Number.isFinite(number) && number > 0
    ? number : fallback;
}

function failedOutcome(kind, detail) {
  return { ok: false, kind, status: null, retryAfter: null, kept: 0, detail };
}

function callSafely(callback, ...args) {
  try {
    callback(...args);
  } catch (err) {
    console.error("LocalChat: a download callback failed:", err);
  }
}

function describe(err) {
  return err && typeof err.message === "string" ? err.message : String(err);
}
