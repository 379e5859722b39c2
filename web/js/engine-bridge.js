// Engine bridge: the main-thread side of the chat engine, called from Python.
//
// Owns: the GPU probe, and one EngineHandle per engine worker (WebLLM's real worker,
// web/workers/engine-worker.js, or the simulated one, web/workers/sim-engine-worker.js,
// which gets the page's query string as its own). Each handle drives its worker through
// WebLLM's WebWorkerMLCEngine, imported lazily from vendor/web-llm/index.js.
//
// The contract with Python: every promise returned here rejects only with a real
// `Error` (a JS promise that rejects with anything else hangs Python's `await`), whose
// `name` is the prefix of WebLLM's error string ("ShaderF16SupportError",
// "NetworkError", …; "EngineError" when there is none) and whose `message` is the rest.
// Bridge-made names: "TimeoutError" (a call took too long), "EngineWorkerError" (the
// worker failed to start or died), "EngineTerminated" (terminate() was called).
// Callbacks (onProgress, onCrash, onDelta) may be Pyodide proxies: they are only called.
//
// Side effects: creates and terminates Web Workers; a handle's hasModelInCache reads
// Cache Storage.
// Module state: only the lazily imported WebLLM module.

const WEBLLM_URL = new URL("../vendor/web-llm/index.js", import.meta.url).href;
const WORKER_URLS = {
  webllm: new URL("../workers/engine-worker.js", import.meta.url),
  sim: new URL("../workers/sim-engine-worker.js", import.meta.url),
};
const MIB = 1024 * 1024;
const DEFAULT_UNLOAD_TIMEOUT_MS = 30_000;
const DEFAULT_CACHE_TIMEOUT_MS = 20_000; // EngineHandle.hasModelInCache
const DEFAULT_STALL_TIMEOUT_MS = 180_000; // longest wait for the next chunk of a reply
const ADAPTER_TIMEOUT_MS = 10_000;
// Above reading speed, fewer screen updates: after an onDelta call that carried more than
// FAST_DELTA_CHARS (some 60 tokens in one frame, i.e. thousands of tokens/s), the next
// call waits FAST_DELTA_MS. Real models stream a few tokens a frame and get every frame.
// At sim_tps=0 on a 2-core machine without a GPU, each frame that shows new text costs
// ~5 ms of main-thread, compositor and raster work; a 2,000-token reply drew ~12 of them.
export const FAST_DELTA_CHARS = 256;
export const FAST_DELTA_MS = 100;

let webllmModule = null; // Promise of the WebLLM module, imported on first use

function loadWebLLM() {
  if (webllmModule === null) {
    webllmModule = import(WEBLLM_URL);
    webllmModule.catch(() => { webllmModule = null; }); // let a later call try again
  }
  return webllmModule;
}

function namedError(name, message, cause) {
  const error = new Error(message, cause === undefined ? undefined : { cause });
  error.name = name;
  return error;
}

/**
 * Any thrown or rejected value as a plain `Error` that Pyodide accepts.
 * A string "Name: message" (how WebLLM's worker errors arrive) becomes an Error named
 * "Name"; an Error-like object keeps its name and message; anything else is named
 * "EngineError".
 */
export function toError(value) {
  if (value instanceof Error && Object.getPrototypeOf(value) === Error.prototype &&
      typeof value.name === "string" && typeof value.message === "string") {
    return value;
  }
  if (typeof value === "string") {
    const match = /^([A-Za-z_$][\w$]*): ?([\s\S]*)$/.exec(value);
    return match ? namedError(match[1], match[2]) : namedError("EngineError", value);
  }
  if (value !== null && typeof value === "object") {
    const name = typeof value.name === "string" && value.name ? value.name : "EngineError";
    let message = typeof value.message === "string" ? value.message : "";
    if (!message) {
      try {
        message = JSON.stringify(value);
      } catch {
        message = String(value);
      }
    }
    return namedError(name, message, value);
  }
  return namedError("EngineError", value === undefined ? "Unknown engine error." : String(value));
}

/**
 * `promise` with its rejection normalised by toError, rejecting with an Error named
 * "TimeoutError" if it has not settled after `ms` milliseconds (no limit when `ms` is
 * 0, missing or not a positive number). `what` names the call in the message.
 */
export function withTimeout(promise, ms, what = "The engine call") {
  const limit = Number(ms);
  return new Promise((resolve, reject) => {
    let timer;
    if (Number.isFinite(limit) && limit > 0) {
      timer = setTimeout(() => reject(namedError("TimeoutError",
        `${what} did not finish within ${Math.round(limit / 100) / 10} s.`)), limit);
    }
    Promise.resolve(promise).then(
      (value) => { clearTimeout(timer); resolve(value); },
      (err) => { clearTimeout(timer); reject(toError(err)); },
    );
  });
}

// ---------------------------------------------------------------------------------
// GPU probe

const SIM_GPUS = {
  f16: { usable: true, f16: true, lowResource: false, maxBufferSize: 2048 * MIB,
         maxStorageBufferBindingSize: 1024 * MIB },
  nof16: { usable: true, f16: false, lowResource: false, maxBufferSize: 2048 * MIB,
           maxStorageBufferBindingSize: 1024 * MIB },
  low: { usable: true, f16: true, lowResource: true, maxBufferSize: 256 * MIB,
         maxStorageBufferBindingSize: 128 * MIB },
  // A software adapter (SwiftShader): it runs, very slowly.
  fallback: { usable: true, f16: false, lowResource: false, maxBufferSize: 2048 * MIB,
              maxStorageBufferBindingSize: 1024 * MIB, fallback: true },
};

function simulatedGpu(params) {
  const kind = (params.get("sim_gpu") || "f16").toLowerCase();
  if (kind === "none") {
    return { usable: false, reason: "no-webgpu", f16: false, lowResource: false, vendor: "",
             description: "", simulated: true, maxBufferSize: 0, maxStorageBufferBindingSize: 0 };
  }
  const gpu = SIM_GPUS[kind] || SIM_GPUS.f16;
  const description = gpu.fallback ? "SwiftShader (simulated software GPU)"
    : "Simulated GPU (LocalChat simulated engine)";
  return { fallback: false, ...gpu, reason: "ok", vendor: "simulated", description,
           simulated: true };
}

/**
 * What the GPU can do, as a plain object (never rejects):
 * {usable, reason: "ok"|"no-webgpu"|"no-adapter"|"limits", f16, lowResource, vendor,
 *  description, simulated, maxBufferSize, maxStorageBufferBindingSize, fallback}
 * (`fallback`: a software adapter such as SwiftShader, no graphics card).
 * With engine=sim in `search` (the page's query string) the answer comes from sim_gpu.
 * The probe runs once per query string (boot.js starts it early; later calls share it).
 */
const probes = new Map(); // search string -> Promise of the probe's answer

export function probeGpu(search = "") {
  const key = String(search || "");
  if (!probes.has(key)) probes.set(key, runProbe(key));
  return probes.get(key);
}

async function runProbe(search) {
  const params = new URLSearchParams(search || "");
  if (params.get("engine") === "sim") return simulatedGpu(params);
  const result = { usable: false, reason: "no-adapter", f16: false, lowResource: false,
                   vendor: "", description: "", simulated: false, maxBufferSize: 0,
                   maxStorageBufferBindingSize: 0, fallback: false };
  try {
    if (typeof navigator === "undefined" || !navigator.gpu) {
      return { ...result, reason: "no-webgpu" };
    }
    // A null adapter or a timeout can be passing (the GPU process restarting, a busy
    // machine): ask once more before saying there is no GPU.
    let adapter = null;
    for (let attempt = 0; attempt < 2 && !adapter; attempt++) {
      try {
        adapter = await withTimeout(
          navigator.gpu.requestAdapter({ powerPreference: "high-performance" }),
          ADAPTER_TIMEOUT_MS, "requestAdapter()");
      } catch (err) {
        if (attempt === 1) throw err;
      }
    }
    if (!adapter) return result;
    const info = adapter.info || (adapter.requestAdapterInfo ? await adapter.requestAdapterInfo() : {});
    const limits = adapter.limits;
    const vendor = String(info.vendor || "");
    result.vendor = vendor;
    result.description = String(info.description || "");
    result.maxBufferSize = Number(limits.maxBufferSize);
    result.maxStorageBufferBindingSize = Number(limits.maxStorageBufferBindingSize);
    result.f16 = adapter.features.has("shader-f16");
    // A software adapter: WebGPU's own flag (adapter.info in newer browsers), or
    // SwiftShader by name.
    result.fallback = Boolean(info.isFallbackAdapter || adapter.isFallbackAdapter) ||
      /swiftshader/i.test(`${vendor} ${info.architecture || ""} ${result.description}`);
    result.lowResource = result.maxStorageBufferBindingSize <= 128 * MIB ||
      /\b(qualcomm|arm)\b/i.test(vendor);
    // WebLLM's hard requirements (its detectGPUDevice).
    const limitsOk = limits.maxComputeWorkgroupStorageSize >= 32768 &&
      limits.maxStorageBuffersPerShaderStage >= 10 &&
      result.maxBufferSize >= 256 * MIB &&
      result.maxStorageBufferBindingSize >= 128 * MIB;
    result.usable = limitsOk;
    result.reason = limitsOk ? "ok" : "limits";
    return result;
  } catch (err) {
    console.warn("LocalChat: the GPU probe failed:", err);
    return { ...result, usable: false, reason: "no-adapter" };
  }
}

// ---------------------------------------------------------------------------------
// The site's storage (the model files themselves are the download worker's:
// web/js/download-bridge.js)

/** {usage, quota, persisted} of this site's storage (nulls when unknown). */
export function storageEstimate() {
  const work = (async () => {
    const s = navigator.storage;
    const est = s && s.estimate ? await s.estimate() : {};
    const persisted = s && s.persisted ? await s.persisted() : null;
    return { usage: est.usage ?? null, quota: est.quota ?? null, persisted };
  })();
  return withTimeout(work, 5000, "Reading the storage estimate");
}

/** Ask the browser to keep this site's data (models) under storage pressure. */
export function requestPersistence() {
  const s = navigator.storage;
  const work = s && s.persist ? s.persist() : Promise.resolve(false);
  return withTimeout(work.then(Boolean), 10_000, "Asking for persistent storage");
}

// ---------------------------------------------------------------------------------
// Engine handles

/** A JS value from Python (a Pyodide proxy of a dict or list) as plain JS. */
function plain(value) {
  if (value && typeof value.toJs === "function") {
    return value.toJs({ dict_converter: Object.fromEntries, create_pyproxies: false });
  }
  return value;
}

/**
 * Create an engine worker and its handle (synchronously; WebLLM is imported lazily).
 * options: {kind: "webllm"|"sim", search, appConfig, onProgress(report), onCrash(message)}.
 */
export function createEngine(options = {}) {
  return new EngineHandle(plain(options) || {});
}

class EngineHandle {
  #worker;
  #engine; // Promise<WebWorkerMLCEngine>
  #appConfig;
  #onProgress;
  #onCrash;
  #pending = new Set(); // rejecters of the promises this handle returned and not settled
  #failure = null; // () => Error, once the worker is gone
  #interruptRequested = false;

  constructor({ kind = "webllm", search = "", appConfig, onProgress, onCrash }) {
    if (!(kind in WORKER_URLS)) throw namedError("EngineError", `Unknown engine kind "${kind}".`);
    this.#appConfig = appConfig ? plain(appConfig) : undefined;
    this.#onProgress = onProgress;
    this.#onCrash = onCrash;
    const url = new URL(WORKER_URLS[kind]);
    if (kind === "sim") url.search = String(search || "").replace(/^\?/, "");
    this.#worker = new Worker(url, { type: "module" });
    this.#worker.addEventListener("error", (event) => {
      event.preventDefault();
      const detail = event.message
        ? `${event.message}${event.filename ? ` (${event.filename}:${event.lineno})` : ""}`
        : `its script ${url.pathname} (or a module it imports) could not be loaded`;
      this.#crash(`The engine worker failed: ${detail}.`);
    });
    this.#engine = loadWebLLM().then(
      (webllm) => new webllm.WebWorkerMLCEngine(this.#worker, {
        appConfig: this.#appConfig,
        initProgressCallback: (report) => this.#progress(report),
      }),
      (err) => {
        const cause = toError(err);
        this.#crash(`WebLLM (${WEBLLM_URL}) could not be loaded: ${cause.message}`);
        throw cause;
      });
    this.#engine.catch(() => {}); // failures reach callers through #call
  }

  /** True until the worker crashed or terminate() was called. */
  get alive() {
    return this.#failure === null;
  }

  /** Load a model (downloading what is not cached). Resolves to undefined. */
  reload(modelId, timeoutMs = 0) {
    return this.#call(`Loading ${modelId}`, timeoutMs, async (engine) => {
      await engine.reload(String(modelId));
      return undefined;
    });
  }

  /**
   * Stream a reply to `messages` ([{role, content}]) and resolve to
   * {content, finishReason, usage}. options: {maxTokens, onDelta(text), stallTimeoutMs}.
   * onDelta gets the text added since its last call, at most once per animation frame
   * (once per FAST_DELTA_MS while a stream outruns reading, see above), and always once
   * more before the promise resolves.
   */
  chat(messages, options = {}) {
    const opts = plain(options) || {};
    const onDelta = opts.onDelta;
    const stallMs = opts.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
    const list = Array.from(plain(messages) || [], (m) => ({
      role: String(m.role),
      content: String(m.content ?? ""),
    }));
    this.#interruptRequested = false;
    return this.#call("The reply", 0, async (engine, entry) => {
      let content = "";
      let sent = 0;
      let frame = null; // the animation frame that calls onDelta
      let delay = null; // the wait before asking for that frame (fast streams)
      let backstop = null;
      let notBefore = 0; // no onDelta call before this time (performance.now())
      const flush = () => {
        if (frame !== null) cancelAnimationFrame(frame);
        clearTimeout(delay);
        clearTimeout(backstop);
        frame = null;
        delay = null;
        backstop = null;
        if (sent === content.length || !onDelta) return;
        const text = content.slice(sent);
        sent = content.length;
        if (text.length > FAST_DELTA_CHARS) notBefore = performance.now() + FAST_DELTA_MS;
        try {
          onDelta(text);
        } catch (err) {
          console.error("LocalChat: the onDelta callback failed:", err);
        }
      };
      const schedule = () => {
        if (backstop !== null) return;
        const wait = Math.max(0, notBefore - performance.now());
        // requestAnimationFrame does not run in a hidden page: the timer takes over.
        backstop = setTimeout(flush, wait + (document.hidden ? 16 : 250));
        if (document.hidden) return;
        if (wait > 8) {
          delay = setTimeout(() => { delay = null; frame = requestAnimationFrame(flush); }, wait - 8);
        } else {
          frame = requestAnimationFrame(flush);
        }
      };
      let stallTimer;
      const armStall = () => {
        clearTimeout(stallTimer);
        if (stallMs > 0) {
          stallTimer = setTimeout(() => entry.reject(namedError("TimeoutError",
            `The reply stalled: nothing arrived for ${Math.round(stallMs / 1000)} s.`)), stallMs);
        }
      };
      const request = { messages: list, stream: true, stream_options: { include_usage: true } };
      if (opts.maxTokens > 0) request.max_tokens = Math.floor(opts.maxTokens);
      let finishReason = null;
      let usage = null;
      let first = true;
      armStall();
      try {
        const chunks = await engine.chat.completions.create(request);
        for await (const chunk of chunks) {
          if (!entry.active) break; // timed out or terminated: stop reading
          armStall();
          const choice = chunk.choices && chunk.choices[0];
          if (choice) {
            const delta = choice.delta && choice.delta.content;
            if (delta) {
              content += delta;
              schedule();
            }
            if (choice.finish_reason) finishReason = choice.finish_reason;
          }
          if (chunk.usage) usage = chunk.usage;
          if (first && this.#interruptRequested) {
            // WebLLM forgets an interrupt that arrives before generation starts: repeat it.
            engine.interruptGenerate();
          }
          first = false;
        }
      } finally {
        clearTimeout(stallTimer);
        flush();
      }
      return { content, finishReason: finishReason || "stop", usage: usage || null };
    });
  }

  /** Ask the current reply to stop at its next token (finishReason "abort"). */
  interrupt() {
    this.#interruptRequested = true;
    if (this.#failure) return Promise.resolve(undefined);
    return this.#engine.then((engine) => { engine.interruptGenerate(); }, () => {})
      .then(() => undefined);
  }

  /** Unload the model (also aborts a reload that is still downloading). */
  unload(timeoutMs = DEFAULT_UNLOAD_TIMEOUT_MS) {
    return this.#call("Unloading the model", timeoutMs, async (engine) => {
      await engine.unload();
      return undefined;
    });
  }

  /** WebLLM's own hasModelInCache(modelId, appConfig), with this handle's appConfig. */
  hasModelInCache(modelId, timeoutMs = DEFAULT_CACHE_TIMEOUT_MS) {
    const check = loadWebLLM().then(
      async (webllm) => Boolean(await webllm.hasModelInCache(String(modelId), this.#appConfig)));
    return withTimeout(check, timeoutMs, "Checking the model cache");
  }

  /** Stop the worker at once (every phase); pending promises reject (EngineTerminated). */
  terminate() {
    if (this.#failure !== null) return;
    this.#worker.terminate();
    this.#fail(() => namedError("EngineTerminated", "The engine was stopped."));
  }

  #progress(report) {
    if (!this.#onProgress || !report) return;
    try {
      this.#onProgress({
        progress: Number(report.progress),
        timeElapsed: Number(report.timeElapsed),
        text: String(report.text),
      });
    } catch (err) {
      console.error("LocalChat: the onProgress callback failed:", err);
    }
  }

  #crash(message) {
    if (this.#failure !== null) return;
    console.warn("LocalChat:", message);
    this.#worker.terminate();
    this.#fail(() => namedError("EngineWorkerError", message));
    if (this.#onCrash) {
      try {
        this.#onCrash(message);
      } catch (err) {
        console.error("LocalChat: the onCrash callback failed:", err);
      }
    }
  }

  #fail(makeError) {
    this.#failure = makeError;
    const pending = [...this.#pending];
    this.#pending.clear();
    for (const entry of pending) entry.reject(makeError());
  }

  /**
   * Run `work(engine, entry)` as a tracked call: it settles once, rejects only with
   * normalised Errors, times out after `timeoutMs` (0 = never) and is rejected when
   * the worker crashes or is terminated. `entry.active` turns false once settled.
   */
  #call(what, timeoutMs, work) {
    if (this.#failure !== null) return Promise.reject(this.#failure());
    return new Promise((resolve, reject) => {
      let timer;
      const entry = { active: true, reject: null };
      const settle = (fn, value) => {
        if (!entry.active) return;
        entry.active = false;
        this.#pending.delete(entry);
        clearTimeout(timer);
        fn(value);
      };
      entry.reject = (err) => settle(reject, err);
      this.#pending.add(entry);
      const limit = Number(timeoutMs);
      if (Number.isFinite(limit) && limit > 0) {
        timer = setTimeout(() => settle(reject, namedError("TimeoutError",
          `${what} did not finish within ${Math.round(limit / 100) / 10} s.`)), limit);
      }
      this.#engine
        .then((engine) => work(engine, entry))
        .then((value) => settle(resolve, value), (err) => settle(reject, toError(err)));
    });
  }
}
