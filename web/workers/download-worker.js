// The download worker: fetches, checks and stores model files, one file per request.
//
// Runs in a dedicated module worker created by web/js/download-bridge.js. It never touches
// the GPU. Each fetch request names one URL; the worker downloads it, counts its bytes as
// they arrive, checks that the body is what it should be (length, JSON shape, wasm magic
// word) and only then stores it as one complete entry in one of WebLLM's caches
// ("webllm/config", "webllm/wasm", "webllm/model") under the key `new Request(url)`,
// exactly where WebLLM's reload() and hasModelInCache() look. Which files, when to retry
// and the model's byte total are decided by Python (pysrc/localchat/core/downloader.py).
//
// Speed: each file streams into cache.put while it downloads (no Blob, no store after the
// last byte): the chunks of the response body pass through one ReadableStream that counts
// them and keeps a reference for a resume (no copy, no message per chunk); it checks the
// whole file before it ends, and a put whose body stream fails stores nothing. A
// progress message goes out at most every `progressMs` per file (the bytes of a chunk that
// came sooner are reported when that time is up, so a count never lags behind a stall).
//
// Owns: the bytes kept from interrupted downloads, for a later Range request (in memory,
// at most KEPT_LIMIT_BYTES over all URLs, oldest dropped first; lost with the worker).
// Side effects: network requests (fetch, cache: "no-store"), Cache Storage writes and
// deletes in the caches named by requests, and a lazy import of WebLLM's bundle (only for
// modelRecord without an appConfig and for hasModelInCache; WebLLM is not run).
//
// Message protocol (structured clones; `call` is the bridge's number for one call):
//   bridge → worker
//     {type: "init", settings: {headers, stallMs, progressMs}}   first message, once
//     {type: "fetch", call, request}                 request: {id, url, cache, check, size,
//                                                      resume, simQuota} (bridge API)
//     {type: "cancel", id}                           abort the fetch request with that id
//     {type: "cancelAll"}
//     {type: "stored"|"readStored"|"peek"|"remove"|"modelRecord"|"hasModelInCache",
//      call, args: [...]}                            the bridge call's arguments, as plain data
//   worker → bridge
//     {type: "bytes", call, received, expected}      fetch progress: when the response's
//                                                    headers arrive, then at most every
//                                                    progressMs, and once just before "done"
//     {type: "done", call, value}                    exactly one per call: a fetch's Outcome,
//                                                    or a data call's answer
// The worker never throws out of a handler: every failure becomes a value in "done".

const MIB = 1024 * 1024;
const KEPT_LIMIT_BYTES = 256 * MIB;
const WASM_MAGIC = [0x00, 0x61, 0x73, 0x6d];
const WEBLLM_URL = new URL("../vendor/web-llm/index.js", import.meta.url).href;
// Failures that leave the bytes received so far worth keeping for a Range request.
const KEEP_KINDS = new Set(["http", "unreachable", "dropped", "stall", "aborted"]);

const settings = { headers: {}, stallMs: 30_000, progressMs: 100 };
const jobs = new Map(); // fetch request id -> job (see newJob)
const kept = new Map(); // url -> {blob, total}; insertion order is age
let quotaTurn = Promise.resolve(); // simQuota checks run one at a time
const simQuotaReserved = new Map(); // job -> bytes: checked under a simQuota, being stored
let webllmModule = null;

self.onmessage = (event) => {
  const message = event.data || {};
  switch (message.type) {
    case "init":
      Object.assign(settings, message.settings);
      break;
    case "fetch":
      fetchFile(message.call, message.request).then((value) => done(message.call, value));
      break;
    case "cancel":
      cancel(jobs.get(message.id));
      break;
    case "cancelAll":
      for (const job of jobs.values()) cancel(job);
      break;
    default:
      if (Object.hasOwn(DATA_CALLS, message.type)) {
        runDataCall(message.type, message.args).then((value) => done(message.call, value));
      }
  }
};

function done(call, value) {
  self.postMessage({ type: "done", call, value });
}

// ---------------------------------------------------------------------------------
// One file: fetch, count, check, store

class DownloadFailure extends Error {
  constructor(kind, detail, { status = null, retryAfter = null } = {}) {
    super(detail);
    this.kind = kind;
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

function newJob(call, request) {
  return {
    call,
    request,
    controller: null, // the AbortController of the current fetch
    reason: null, // "stall" | "aborted": why this worker aborted the fetch
    finishing: false, // all bytes arrived: checks and store run, a cancel comes too late
    prior: null, // {blob, total}: bytes kept from an earlier attempt, being resumed
    failure: null, // the DownloadFailure that ended the file's stream (see fileStream)
    data: null, // the summary of a JSON check
    chunks: [], // this response's body chunks (Uint8Array), as the reader gave them
    received: 0, // bytes of the file held now (prior included)
    total: null, // the file's full length as the response announced it
    resumable: true, // false when the body is content-encoded (a Range would not fit)
    contentType: "application/octet-stream",
    lastByte: 0, // performance.now() of the last chunk (or of the request)
    lastPost: -Infinity, // performance.now() of the last "bytes" message
    timer: null, // the stall watchdog
    trailing: null, // the timer that reports bytes a throttled chunk brought
  };
}

async function fetchFile(call, request) {
  const job = newJob(call, request);
  jobs.set(request.id, job);
  let outcome;
  try {
    outcome = await download(job);
  } catch (err) {
    outcome = failureOutcome(job, err);
  } finally {
    clearTimeout(job.timer);
    if (jobs.get(request.id) === job) jobs.delete(request.id);
  }
  postBytes(job);
  return outcome;
}

async function download(job) {
  const { request } = job;
  job.prior = request.resume ? kept.get(request.url) || null : null;
  kept.delete(request.url); // held by this job now; kept again if it fails
  watchForStall(job);
  let response = await open(job);
  if (job.prior) response = await reconcile(job, response);
  if (!response.ok) throw httpFailure(response);
  readHeaders(job, response);
  postBytes(job);
  await store(job, response);
  kept.delete(request.url);
  return { ok: true, size: job.received, data: job.data };
}

/** Start the request (with a Range when resuming); fetch() failing is "unreachable". */
async function open(job) {
  if (job.reason) throw interruption(job, "unreachable", null);
  const headers = { ...settings.headers };
  if (job.prior) headers.Range = `bytes=${job.prior.blob.size}-`;
  job.controller = new AbortController();
  job.lastByte = performance.now();
  try {
    return await fetch(job.request.url, { headers, signal: job.controller.signal,
                                          cache: "no-store" });
  } catch (err) {
    throw interruption(job, "unreachable", err);
  }
}

/**
 * The answer to a Range request: a 206 that continues the kept bytes is used as it is;
 * a 200 (Range ignored) starts the file over; a 416 or a 206 for other bytes drops the
 * kept bytes and asks once more without a Range. Error statuses are left to the caller.
 */
async function reconcile(job, response) {
  const { prior, request } = job;
  if (response.status === 200) {
    job.prior = null;
    return response;
  }
  const range = response.status === 206 ? contentRange(response) : null;
  const fits = range !== null && range.start === prior.blob.size &&
    (request.size === null || range.total === request.size) &&
    (prior.total === null || range.total === prior.total);
  if (fits) return response;
  if (response.status !== 206 && response.status !== 416) return response;
  discard(response);
  job.prior = null;
  return open(job);
}

function readHeaders(job, response) {
  if (response.status === 206 && !job.prior) {
    discard(response);
    throw new DownloadFailure("invalid", "the host sent part of the file (206) unasked");
  }
  const type = response.headers.get("Content-Type");
  if (type) job.contentType = type;
  if (/^\s*text\/html\b/i.test(type || "")) {
    discard(response);
    throw new DownloadFailure("invalid", `the host sent a web page (${type}), not the file`);
  }
  // A content-encoded body has another length than the file, and Range counts encoded
  // bytes: neither the announced length nor a resume can be trusted then.
  const encoding = response.headers.get("Content-Encoding");
  job.resumable = !encoding || encoding.trim().toLowerCase() === "identity";
  if (response.status === 206) {
    job.total = contentRange(response).total;
  } else if (job.resumable) {
    job.total = nonNegativeInteger(response.headers.get("Content-Length"));
  }
  job.received = job.prior ? job.prior.blob.size : 0;
}

/**
 * The file as one stream for cache.put: the kept bytes of a resumed attempt, then the
 * response's body, counted and kept as they pass (no copy). At its end it checks the whole
 * file and errors instead of closing when the file is wrong, so that put stores nothing.
 * It leaves the failures it meets in job.failure (put's rejection does not say why).
 */
function fileStream(job, response, cache) {
  const body = response.body ? response.body.getReader() : null;
  let prior = job.prior ? job.prior.blob.stream().getReader() : null;
  const fail = (controller, failure) => {
    job.failure = failure;
    controller.error(failure);
  };
  return new ReadableStream({
    async pull(controller) {
      if (prior) {
        const step = await prior.read();
        if (!step.done) {
          controller.enqueue(step.value);
          return;
        }
        prior = null;
      }
      let step;
      try {
        step = body ? await body.read() : { done: true };
      } catch (err) {
        fail(controller, interruption(job, "dropped", err));
        return;
      }
      if (!step.done) {
        count(job, step.value);
        controller.enqueue(step.value);
        return;
      }
      job.finishing = true;
      clearTimeout(job.timer);
      try {
        job.data = await check(job);
        if (job.request.simQuota) await inQuotaTurn(() => reserveSimQuota(job, cache));
        controller.close();
      } catch (err) {
        fail(controller, err);
      }
    },
    cancel(reason) {
      if (body) body.cancel(reason).catch(() => {});
    },
  }, { highWaterMark: 0 });
}

function count(job, chunk) {
  job.chunks.push(chunk);
  job.received += chunk.byteLength;
  const now = performance.now();
  job.lastByte = now;
  const { progressMs } = settings;
  if (now - job.lastPost >= progressMs) {
    postBytes(job, now);
  } else if (job.trailing === null) {
    // Report these bytes later even if no chunk follows (a slow or stalled link).
    job.trailing = setTimeout(() => postBytes(job), progressMs - (now - job.lastPost));
  }
}

function bodyParts(job) {
  return job.prior ? [job.prior.blob, ...job.chunks] : job.chunks;
}

/** The file's summary if it is what request.check expects; else a failure "invalid". */
async function check(job) {
  const { size, check: kind } = job.request;
  const length = job.received;
  if (size !== null && length !== size) {
    throw new DownloadFailure("invalid", `${length} bytes arrived, ${size} expected`);
  }
  if (job.total !== null && length !== job.total) {
    throw new DownloadFailure("invalid", `${length} bytes arrived, the host announced ${job.total}`);
  }
  if (kind === "bytes") return null;
  const blob = new Blob(bodyParts(job)); // small files only: configs, JSON, the model library
  if (kind === "wasm") {
    const head = new Uint8Array(await blob.slice(0, WASM_MAGIC.length).arrayBuffer());
    if (!WASM_MAGIC.every((byte, i) => head[i] === byte)) {
      throw new DownloadFailure("invalid",
        `not a WebAssembly module: it starts with ${hex(head) || "nothing"}`);
    }
    return null;
  }
  return summarize(kind, parseJson(await blob.arrayBuffer()));
}

/**
 * Store the file as it arrives: cache.put reads fileStream, which ends only once the whole
 * file has passed the checks (a put whose body fails stores nothing).
 */
async function store(job, response) {
  const { request } = job;
  const length = request.size !== null ? request.size : job.total;
  const headers = { "Content-Type": job.contentType };
  if (length !== null) headers["Content-Length"] = String(length);
  try {
    const cache = await caches.open(request.cache);
    const body = fileStream(job, response, cache);
    await cache.put(new Request(request.url), new Response(body, { status: 200, headers }));
  } catch (err) {
    if (job.failure) throw job.failure;
    const kind = err && err.name === "QuotaExceededError" ? "quota" : "storage";
    throw new DownloadFailure(kind, describe(err));
  } finally {
    simQuotaReserved.delete(job);
  }
}

/**
 * sim only: refuse the file (kind "quota") if the bytes stored under simQuota.prefix, plus
 * those of other files checked but not yet stored there, plus this file pass the limit.
 */
async function reserveSimQuota(job, cache) {
  const { prefix, limit } = job.request.simQuota;
  let used = 0;
  for (const key of await cache.keys()) {
    if (key.url.startsWith(prefix) && key.url !== job.request.url) {
      used += await storedSize(await cache.match(key));
    }
  }
  for (const [other, reserved] of simQuotaReserved) {
    if (other.request.simQuota.prefix === prefix) used += reserved;
  }
  if (used + job.received > limit) {
    throw new DownloadFailure("quota",
      `QuotaExceededError: simulated storage limit (${used} + ${job.received} > ${limit} bytes)`);
  }
  simQuotaReserved.set(job, job.received);
}

function inQuotaTurn(work) {
  const turn = quotaTurn.then(work);
  quotaTurn = turn.catch(() => {});
  return turn;
}

// ---------------------------------------------------------------------------------
// Stalls, cancels, failures and kept bytes

/** Abort the fetch once no byte has arrived for settings.stallMs (headers included). */
function watchForStall(job) {
  const { stallMs } = settings;
  if (!(stallMs > 0)) return;
  const tick = () => {
    const idle = performance.now() - job.lastByte;
    if (idle < stallMs) {
      job.timer = setTimeout(tick, stallMs - idle);
    } else if (!job.finishing) {
      abort(job, "stall");
    }
  };
  job.lastByte = performance.now();
  job.timer = setTimeout(tick, stallMs);
}

function cancel(job) {
  if (job && !job.finishing) abort(job, "aborted");
}

function abort(job, reason) {
  if (job.reason) return;
  job.reason = reason;
  if (job.controller) job.controller.abort();
}

/** The failure for an interrupted fetch or read: ours (stall, aborted) or the network's. */
function interruption(job, kind, err) {
  if (job.reason === "stall") {
    return new DownloadFailure("stall", `no byte arrived for ${settings.stallMs} ms`);
  }
  if (job.reason === "aborted") return new DownloadFailure("aborted", "canceled");
  return new DownloadFailure(kind, describe(err));
}

function httpFailure(response) {
  discard(response);
  const status = response.status;
  const text = response.statusText ? ` ${response.statusText}` : "";
  return new DownloadFailure("http", `HTTP ${status}${text}`, {
    status, retryAfter: retryAfterSeconds(response.headers.get("Retry-After")) });
}

function failureOutcome(job, err) {
  let failure = err;
  if (!(err instanceof DownloadFailure)) {
    console.error("LocalChat download worker: unexpected failure:", err);
    failure = new DownloadFailure("storage", `the download worker failed: ${describe(err)}`);
  }
  const keptBytes = KEEP_KINDS.has(failure.kind) ? keep(job) : forget(job.request.url);
  job.received = keptBytes;
  return { ok: false, kind: failure.kind, status: failure.status,
           retryAfter: failure.retryAfter, kept: keptBytes, detail: failure.message };
}

/** Keep what this job holds for a later resume; returns how many bytes are kept. */
function keep(job) {
  const { url } = job.request;
  const bytes = (job.prior ? job.prior.blob.size : 0) +
    job.chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0);
  if (bytes === 0 || !job.resumable) return forget(url);
  kept.set(url, { blob: new Blob(bodyParts(job)), total: job.total });
  trimKept();
  return kept.has(url) ? bytes : 0;
}

function forget(url) {
  kept.delete(url);
  return 0;
}

function trimKept() {
  let total = 0;
  for (const entry of kept.values()) total += entry.blob.size;
  for (const [url, entry] of kept) {
    if (total <= KEPT_LIMIT_BYTES) return;
    kept.delete(url);
    total -= entry.blob.size;
  }
}

function postBytes(job, now = performance.now()) {
  clearTimeout(job.trailing);
  job.trailing = null;
  job.lastPost = now;
  const expected = job.request.size !== null ? job.request.size : job.total;
  self.postMessage({ type: "bytes", call: job.call, received: job.received, expected });
}

// ---------------------------------------------------------------------------------
// Data calls (the bridge's stored, readStored, peek, remove, modelRecord, hasModelInCache)

const DATA_CALLS = {
  async stored(entries) {
    const sizes = {};
    await Promise.all(entries.map(async ({ cache, url }) => {
      const response = await (await caches.open(cache)).match(new Request(url));
      if (response) sizes[url] = await storedSize(response);
    }));
    return sizes;
  },

  async readStored(cacheName, url, kind) {
    try {
      const response = await (await caches.open(cacheName)).match(new Request(url));
      return response ? summarize(kind, parseJson(await response.arrayBuffer())) : null;
    } catch {
      return null; // absent, unreadable or not what `kind` expects
    }
  },

  async peek(url, kind) {
    const target = new URL(url, self.location.href);
    if (target.origin !== self.location.origin || !navigator.onLine) return null;
    const signal = settings.stallMs > 0 ? AbortSignal.timeout(settings.stallMs) : undefined;
    try {
      const response = await fetch(target.href, { headers: settings.headers, signal,
                                                  cache: "no-store" });
      if (!response.ok) return null;
      return summarize(kind, parseJson(await response.arrayBuffer()));
    } catch {
      return null;
    }
  },

  async remove(entries) {
    let removed = 0;
    for (const entry of entries) {
      const cache = await caches.open(entry.cache);
      if (typeof entry.url === "string") {
        if (await cache.delete(new Request(entry.url))) removed += 1;
      } else if (typeof entry.prefix === "string" && entry.prefix) {
        for (const key of await cache.keys()) {
          if (key.url.startsWith(entry.prefix) && await cache.delete(key)) removed += 1;
        }
      }
    }
    return removed;
  },

  async modelRecord(modelId, appConfig) {
    const config = appConfig || (await loadWebLLM()).prebuiltAppConfig;
    const record = config.model_list.find((item) => item.model_id === modelId);
    if (!record) return { error: `No model record for ${modelId}.` };
    return { model_id: record.model_id, model: record.model, model_lib: record.model_lib,
             base: cleanModelUrl(record.model) };
  },

  async hasModelInCache(modelId, appConfig) {
    const webllm = await loadWebLLM();
    return Boolean(await webllm.hasModelInCache(modelId, appConfig || undefined));
  },
};

// What a data call answers when it fails (the bridge uses the same when the worker dies).
const DATA_FALLBACKS = {
  stored: () => ({}),
  readStored: () => null,
  peek: () => null,
  remove: () => 0,
  modelRecord: (err) => ({ error: describe(err) }),
  hasModelInCache: () => false,
};

async function runDataCall(type, args) {
  try {
    return await DATA_CALLS[type](...args);
  } catch (err) {
    console.warn(`LocalChat download worker: ${type} failed:`, err);
    return DATA_FALLBACKS[type](err);
  }
}

function loadWebLLM() {
  if (webllmModule === null) {
    webllmModule = import(WEBLLM_URL);
    webllmModule.catch(() => { webllmModule = null; }); // let a later call try again
  }
  return webllmModule;
}

/** WebLLM's cleanModelUrl (lib/index.js): the folder its files are read from. */
function cleanModelUrl(modelUrl) {
  let url = modelUrl.endsWith("/") ? modelUrl : modelUrl + "/";
  if (!/.+\/resolve\/.+\//.test(url)) url += "resolve/main/";
  return new URL(url).href;
}

// ---------------------------------------------------------------------------------
// Checks and small helpers

function parseJson(buffer) {
  let text;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(buffer);
  } catch {
    throw new DownloadFailure("invalid", "the file is not UTF-8 text");
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new DownloadFailure("invalid", `the file is not JSON: ${err.message}`);
  }
}

/** The summary Python gets for a JSON check (null for "json"); "invalid" if it isn't one. */
function summarize(kind, value) {
  if (kind === "chat-config") return chatConfigSummary(value);
  if (kind === "tensor-cache") return tensorCacheSummary(value);
  if (kind === "json") return null;
  throw new DownloadFailure("invalid", `"${kind}" files have no JSON summary`);
}

function chatConfigSummary(config) {
  const files = isObject(config) ? config.tokenizer_files : undefined;
  if (!Array.isArray(files) || !files.every((name) => typeof name === "string")) {
    throw new DownloadFailure("invalid",
      "mlc-chat-config.json has no tokenizer_files list of names");
  }
  const window = config.context_window_size;
  return { tokenizer_files: [...files],
           context_window_size: Number.isFinite(window) ? window : null };
}

function tensorCacheSummary(index) {
  const records = isObject(index) ? index.records : undefined;
  if (!Array.isArray(records) || records.length === 0) {
    throw new DownloadFailure("invalid", "tensor-cache.json has no records");
  }
  return {
    records: records.map((record, i) => {
      if (!isObject(record) || !isRelativePath(record.dataPath) ||
          !Number.isSafeInteger(record.nbytes) || record.nbytes < 0) {
        throw new DownloadFailure("invalid",
          `tensor-cache.json record ${i} needs a relative dataPath and whole nbytes`);
      }
      return { dataPath: record.dataPath, nbytes: record.nbytes };
    }),
  };
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** A path inside the model folder: no scheme, not absolute, no "..", no backslash. */
function isRelativePath(path) {
  return typeof path === "string" && path !== "" && !/^[a-z][a-z0-9+.-]*:/i.test(path) &&
    !path.startsWith("/") && !path.includes("\\") && !path.split("/").includes("..");
}

function contentRange(response) {
  const match = /^\s*bytes\s+(\d+)-(\d+)\/(\d+)\s*$/i.exec(response.headers.get("Content-Range") || "");
  return match ? { start: Number(match[1]), end: Number(match[2]), total: Number(match[3]) } : null;
}

/** Retry-After in seconds (delta-seconds or an HTTP-date), null when absent or unreadable. */
function retryAfterSeconds(value) {
  if (value === null) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const date = Date.parse(text);
  return Number.isFinite(date) ? Math.max(0, Math.ceil((date - Date.now()) / 1000)) : null;
}

async function storedSize(response) {
  const length = nonNegativeInteger(response.headers.get("Content-Length"));
  return length !== null ? length : (await response.blob()).size;
}

function nonNegativeInteger(text) {
  return text !== null && /^\s*\d+\s*$/.test(text) ? Number(text) : null;
}

function discard(response) {
  if (response.body) response.body.cancel().catch(() => {});
}

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

function describe(err) {
  if (err === null || err === undefined) return "unknown error";
  if (typeof err === "object" && typeof err.message === "string") {
    return err.name ? `${err.name}: ${err.message}` : err.message;
  }
  return String(err);
}
