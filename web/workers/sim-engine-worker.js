// The simulated engine: WebLLM's real worker protocol with the GPU work simulated.
//
// Runs WebLLM's own WebWorkerMLCEngineHandler, with its engine replaced by SimEngine
// below, so the page talks to it exactly as to web/workers/engine-worker.js. Opt-in only
// (`?engine=sim`); it exists so every behaviour can be tested and shown without a GPU.
//
// Knobs: the query string of this worker's own URL (the page passes its own). It reads
// exactly these five (see the "Simulated engine contract" in DESIGN.md and README):
//   sim_compile_s=SECONDS   how long the GPU phase takes (weights to the GPU, then the
//                           shader compile); default 2
//   sim_tps=N               reply speed in tokens/s (0 = as fast as possible); default 30
//   sim_gpu=f16|nof16|low|none   the simulated GPU; default f16
//   sim_device_lost=MODEL[,…]    the GPU is lost halfway through compiling that model
//                           (DeviceLostError); MODEL is quick, smart or genius
//   sim_gpu_reset=N         the GPU device is lost (a GPU reset) once this worker has
//                           finished N replies; the model is then unloaded inside the
//                           worker, as WebLLM does after device.lost, and every request
//                           fails with ModelNotLoadedError until a reload(). The count
//                           is per worker and not reset by a reload; a reload after the
//                           loss gets a device that stays. N = 0: every load's device is
//                           lost right after the load finishes, so no reply succeeds.
// The download knobs (sim_mbps, sim_scale, sim_fail, sim_fail_always, sim_quota) are not
// read here: the dev server's simulated model host honours them for LocalChat's own
// downloader (sim_scale is in the model URLs of the sim appConfig).
//
// What is real: reload() reads the model's files the way WebLLM 0.2.86's reload() does
// (node_modules/@mlc-ai/web-llm/lib/index.js, MLCEngine.reloadInternal, ArtifactCache,
// tvm.fetchTensorCache), from WebLLM's caches under WebLLM's keys: "webllm/config"
// (<base>mlc-chat-config.json), "webllm/wasm" (the record's model_lib, except that, like
// WebLLM, a model_lib containing "localhost" or not starting with "http" is fetched
// every time and never cached), "webllm/model" (tokenizer.json or tokenizer.model,
// tensor-cache.json, the params shards). Each file is looked up with
// cache.match(new Request(url)) first; a missing one is fetched with cache.add() (a plain
// network request, no pacing, no retry, no check: one failure fails the load, as in
// WebLLM). With LocalChat's downloader in front, nothing is missing and reload() sends
// no request. The model library must be a valid WebAssembly module (else V8's
// CompileError, as WebLLM's instantiate would throw); it is compiled, never run.
// Progress texts, error names and stream chunks have WebLLM's exact shapes.
// What is simulated: the GPU (sim_gpu, sim_device_lost, sim_gpu_reset), the upload of
// the weights and the shader compile (timed to sim_compile_s), and the replies
// (deterministic text at sim_tps; the prompt's token count is stricter than LocalChat's
// own estimate: one token per character from U+1100 on, CJK, kana, Hangul, emoji…, the
// rest at 2.5 characters a token, where LocalChat's estimate says 3).
// Side effects: Cache Storage reads, and writes by cache.add() of missing files.

import { WebWorkerMLCEngineHandler } from "../vendor/web-llm/index.js";

const MIB = 1024 * 1024;
const GPU_LABEL = "Simulated GPU (LocalChat simulated engine)";
const SHADER_MODULES = 96; // how many "shader modules" the compile phase reports
const LOAD_SHARE = 0.4; // share of sim_compile_s spent "loading weights to the GPU"
const DOWNLOAD_LANES = 4; // WebLLM's tvm.fetchTensorCache: 4 parallel loops over the shards
const WASM_MAGIC = [0x00, 0x61, 0x73, 0x6d];

// ---------------------------------------------------------------------------------
// Knobs

function readKnobs(search) {
  const params = new URLSearchParams(search);
  const number = (name, fallback) => {
    const raw = params.get(name);
    if (raw === null || raw.trim() === "") return fallback;
    const value = Number(raw);
    return Number.isFinite(value) && value >= 0 ? value : fallback;
  };
  const gpu = (params.get("sim_gpu") || "f16").toLowerCase();
  const reset = number("sim_gpu_reset", null);
  return {
    compileSeconds: number("sim_compile_s", 2),
    tps: number("sim_tps", 30),
    gpu: ["f16", "nof16", "low", "none"].includes(gpu) ? gpu : "f16",
    deviceLost: new Set((params.get("sim_device_lost") || "").split(",")
      .map((key) => key.trim().toLowerCase()).filter(Boolean)),
    gpuResetAfter: Number.isInteger(reset) ? reset : null, // null: never
  };
}

/** Catalog key of a WebLLM model id, by its size: -1B- quick, -3B- smart, -8B- genius. */
function catalogKey(modelId) {
  if (modelId.includes("-1B-")) return "quick";
  if (modelId.includes("-3B-")) return "smart";
  if (modelId.includes("-8B-")) return "genius";
  return null;
}

// ---------------------------------------------------------------------------------
// Small helpers

/** An Error whose toString() is "<name>: <message>", as WebLLM's errors are. */
function namedError(name, message) {
  const error = new Error(message);
  error.name = name;
  return error;
}

function sleep(ms) {
  return new Promise((resolve) => { setTimeout(resolve, Math.max(0, ms)); });
}

/** Sleep until `due` (a performance.now() time); skips tiny waits to spare timers. */
function sleepUntil(due, slackMs = 0) {
  const wait = due - performance.now();
  return wait <= slackMs ? Promise.resolve() : sleep(wait);
}

/** WebLLM's cleanModelUrl: the model folder URL ending in /resolve/main/. */
function modelBaseUrl(model) {
  let url = model.endsWith("/") ? model : model + "/";
  if (!/.+\/resolve\/.+\//.test(url)) url += "resolve/main/";
  return new URL(url, self.location.origin).href;
}

// WebLLM's ArtifactCache (the Cache API backend): one cache per scope, keyed by full
// URL; a file is looked up first and fetched with cache.add() (fetch + put, any 2xx
// stored as it is) only when it is not there.
async function addToCache(scope, url, signal) {
  const cache = await caches.open(scope);
  const request = new Request(url, signal ? { signal } : undefined);
  if ((await cache.match(request)) === undefined) {
    await cache.add(request);
  }
  return cache;
}

async function fetchWithCache(scope, url, type, signal) {
  const cache = await addToCache(scope, url, signal);
  const response = await cache.match(new Request(url));
  if (response === undefined) throw new Error("Cannot fetch " + url);
  return type === "json" ? response.json() : response.arrayBuffer();
}

async function hasAllKeys(scope, urls) {
  const cache = await caches.open(scope);
  try {
    const keys = new Set((await cache.keys()).map((request) => request.url));
    return urls.every((url) => keys.has(url));
  } catch {
    return false;
  }
}

/** The model library's bytes, fetched as WebLLM's reloadInternal does (fetchWasmSource). */
async function fetchWasmSource(wasmUrl, signal) {
  if (wasmUrl.includes("localhost")) {
    // WebLLM: "do not cache wasm on local host as we might update code frequently".
    return (await fetch(wasmUrl)).arrayBuffer();
  }
  if (!wasmUrl.startsWith("http")) {
    return (await fetch(new URL(wasmUrl, self.location.origin).href)).arrayBuffer();
  }
  return fetchWithCache("webllm/wasm", wasmUrl, "arraybuffer", signal);
}

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");

/**
 * "Instantiate" the model library as WebLLM's tvm.instantiate would, without running
 * it: a wrong magic word or an invalid module throws V8's CompileError (name
 * "CompileError", message "WebAssembly.instantiate(): …").
 */
async function checkModelLibrary(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes.length >= 4 && WASM_MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new WebAssembly.CompileError("WebAssembly.instantiate(): expected magic word " +
      `${hex(WASM_MAGIC)}, found ${hex(bytes.subarray(0, 4))} @+0`);
  }
  if (WebAssembly.validate(bytes)) return;
  let message = "WebAssembly.instantiate(): invalid module";
  try {
    await WebAssembly.compile(bytes);
  } catch (err) {
    // V8's own text for what is wrong, with the prefix instantiate() would give.
    if (err && typeof err.message === "string") {
      message = err.message.replace(/^WebAssembly\.compile\(\)/, "WebAssembly.instantiate()");
    }
  }
  throw new WebAssembly.CompileError(message);
}

// From U+1100 (Hangul Jamo) on, every character is one token: CJK, kana, Hangul, emoji,
// symbols (a real tokenizer makes about one of each CJK character and more of emoji).
// LocalChat's estimate (pysrc/localchat/core/context.py, WIDE_FROM) starts there too.
const WIDE_FROM = 0x1100;
// The other characters: 2 tokens per 5 characters (2.5 a token), stricter than the app's
// 3 a token, so that the app's trimming is tested against a count it can't lean on.
// (A real Llama-3 tokenizer makes about 4 English characters a token.)

/**
 * The prompt's token count: every character (code point) from U+1100 on is one token,
 * the others 2.5 to a token, rounded up; at least 1. Never less than LocalChat's own
 * per-character estimate for the same text.
 */
function countPromptTokens(texts) {
  let wide = 0;
  let other = 0;
  for (const text of texts) {
    for (const char of text) {
      if (char.codePointAt(0) >= WIDE_FROM) wide += 1;
      else other += 1;
    }
  }
  return Math.max(1, wide + Math.ceil((other * 2) / 5));
}

// ---------------------------------------------------------------------------------
// Replies

const REPLY_OPENERS = [
  "This is a simulated reply from the LocalChat test engine.",
  "Simulated reply: no language model ran to write this.",
  "Here is a simulated reply, generated without a GPU.",
];
const REPLY_SENTENCES = [
  "The real engine would answer with a model running on your graphics card.",
  "Replies like this one let you try the app on any machine.",
  "Every word here is chosen from a fixed list by a hash of your message.",
  "Ask the same thing again and you will get exactly the same answer.",
  "Start a message with /echo to get its text back unchanged.",
  "Downloads, progress and errors behave as they would with real models.",
  "Speed, failures and GPU features can be changed in the page address.",
  "Nothing you type leaves this browser.",
  "A longer question does not make this answer any smarter.",
  "The simulated model streams its answer token by token.",
];

function hash32(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

function contentText(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content.map((part) => (part && typeof part.text === "string" ? part.text : "")).join("");
  }
  return content == null ? "" : String(content);
}

function replyFor(messages) {
  const lastUser = [...messages].reverse().find((m) => m && m.role === "user");
  const prompt = lastUser ? contentText(lastUser.content) : "";
  if (prompt.startsWith("/echo ")) return prompt.slice("/echo ".length);
  const h = hash32(prompt);
  const words = prompt.trim().split(/\s+/).filter(Boolean).slice(0, 6).join(" ");
  const quote = words.length > 40 ? words.slice(0, 40).trimEnd() + "…" : words;
  const parts = [REPLY_OPENERS[h % REPLY_OPENERS.length]];
  if (quote) parts.push(`You wrote “${quote}”.`);
  const first = (h >>> 8) % REPLY_SENTENCES.length;
  const second = (first + 1 + ((h >>> 16) % (REPLY_SENTENCES.length - 1))) % REPLY_SENTENCES.length;
  parts.push(REPLY_SENTENCES[first], REPLY_SENTENCES[second]);
  return parts.join(" ");
}

/** Split text into token-sized pieces whose concatenation is exactly the text. */
function tokenize(text) {
  const tokens = text.match(/\s*[\p{L}\p{N}\p{M}]{1,8}|\s*[^\s\p{L}\p{N}\p{M}]|\s+/gu) || [];
  return tokens.join("") === text ? tokens : Array.from(text);
}

// ---------------------------------------------------------------------------------
// The engine

class SimEngine {
  constructor(knobs) {
    this.knobs = knobs;
    this.appConfig = undefined;
    this.initProgressCallback = undefined;
    this.reloadController = undefined;
    this.loaded = null; // {modelId, config} of the one loaded model
    this.interruptSignal = false;
    this.message = "";
    this.stats = { prefillTokens: 0, prefillTime: 0, decodeTokens: 0, decodeTime: 0 };
    this.lock = Promise.resolve();
    this.finishedReplies = 0; // replies finished in this worker (sim_gpu_reset)
    this.gpuResetDone = false;
  }

  // --- setters and getters the handler calls -------------------------------------

  setAppConfig(appConfig) {
    this.appConfig = appConfig;
  }

  setInitProgressCallback(callback) {
    this.initProgressCallback = callback;
  }

  getInitProgressCallback() {
    return this.initProgressCallback;
  }

  setLogLevel() {}

  setLogitProcessorRegistry() {}

  report(progress, timeElapsed, text) {
    this.initProgressCallback?.({ progress, timeElapsed, text });
  }

  // --- loading ------------------------------------------------------------------

  async reload(modelIds, chatOpts) {
    await this.unload();
    const ids = Array.isArray(modelIds) ? modelIds : [modelIds];
    const opts = Array.isArray(chatOpts) ? chatOpts[0] : chatOpts;
    if (ids.length !== 1) {
      throw namedError("ReloadArgumentSizeUnmatchedError",
        "The simulated engine loads exactly one model at a time.");
    }
    const controller = new AbortController();
    this.reloadController = controller;
    try {
      await this.loadModel(ids[0], opts, controller.signal);
    } catch (err) {
      // Like WebLLM: an unload() or a new reload() during the network phase makes this
      // reload resolve without loading anything.
      if (controller.signal.aborted && err && err.name === "AbortError") return;
      throw err;
    } finally {
      if (this.reloadController === controller) this.reloadController = undefined;
    }
  }

  async unload() {
    this.loaded = null;
    this.message = "";
    if (this.reloadController) {
      this.reloadController.abort();
      this.reloadController = undefined;
    }
  }

  findRecord(modelId) {
    const record = this.appConfig?.model_list?.find((item) => item.model_id === modelId);
    if (record === undefined) {
      throw namedError("ModelNotFoundError",
        `Cannot find model record in appConfig for ${modelId} (simulated engine: ` +
        "pass an appConfig whose model_list names it).");
    }
    return record;
  }

  /** WebLLM's reloadInternal, in its order, with the GPU work simulated. */
  async loadModel(modelId, chatOpts, signal) {
    const reloadStart = performance.now();
    const record = this.findRecord(modelId);
    if (this.appConfig.cacheBackend && this.appConfig.cacheBackend !== "cache") {
      throw namedError("EngineError",
        `The simulated engine reads models with the Cache API only, not "${this.appConfig.cacheBackend}".`);
    }
    const base = modelBaseUrl(record.model);
    const chatConfigUrl = new URL("mlc-chat-config.json", base).href;
    const configData = await fetchWithCache("webllm/config", chatConfigUrl, "arraybuffer", signal);
    const config = {
      ...JSON.parse(new TextDecoder().decode(configData)),
      ...(record.overrides || {}),
      ...(chatOpts || {}),
    };
    if (record.model_lib === undefined) {
      throw namedError("MissingModelError", `Missing \`model_lib\` for the model with ID ` +
        `"${modelId}". Please ensure that \`model_lib\` is provided in \`model_list\` for ` +
        "each model. This URL is essential for downloading the WASM library necessary to " +
        "run the model.");
    }
    await checkModelLibrary(await fetchWasmSource(record.model_lib, signal));

    const gpu = this.knobs.gpu;
    if (gpu === "none") {
      throw namedError("WebGPUNotAvailableError",
        "WebGPU is not supported in your current environment, but it is necessary to run the " +
        "WebLLM engine (simulated: sim_gpu=none).");
    }
    const needsF16 = modelId.includes("q4f16");
    if (gpu === "nof16" && (record.required_features || []).includes("shader-f16")) {
      throw this.shaderF16Error();
    }
    await this.loadTokenizer(base, config);
    await this.fetchParams(base, signal);

    // From here on the work is "on the GPU": an abort is ignored, as in WebLLM.
    if (gpu === "nof16" && needsF16) throw this.shaderF16Error();
    await this.compileShaders(catalogKey(modelId));
    this.loaded = { modelId, config };
    this.message = "";
    this.report(1, (performance.now() - reloadStart) / 1000, "Finish loading on WebGPU - " + GPU_LABEL);
    if (this.knobs.gpuResetAfter === 0) this.loseDevice();
  }

  shaderF16Error() {
    return namedError("ShaderF16SupportError",
      "This model requires the WebGPU feature shader-f16, which this GPU does not offer " +
      "(simulated: sim_gpu=nof16). Use the q4f32 variant of the model.");
  }

  /** WebLLM's asyncLoadTokenizer: tokenizer.json, else tokenizer.model (no abort signal). */
  async loadTokenizer(base, config) {
    const files = Array.isArray(config.tokenizer_files) ? config.tokenizer_files : [];
    for (const name of ["tokenizer.json", "tokenizer.model"]) {
      if (files.includes(name)) {
        await fetchWithCache("webllm/model", new URL(name, base).href, "arraybuffer");
        return;
      }
    }
    throw namedError("UnsupportedTokenizerFilesError",
      `Cannot handle tokenizer files ${config.tokenizer_files}`);
  }

  /**
   * tvm.fetchTensorCache: tensor-cache.json, then (unless every shard is cached) the
   * missing shards with cache.add() in WebLLM's 4 loops, one report per shard, then
   * "load them to the GPU".
   */
  async fetchParams(base, signal) {
    const tensorCacheUrl = new URL("tensor-cache.json", base).href;
    const list = (await fetchWithCache("webllm/model", tensorCacheUrl, "json", signal)).records;
    const urls = list.map((shard) => new URL(shard.dataPath, base).href);
    const totalBytes = list.reduce((sum, shard) => sum + shard.nbytes, 0);
    const tstart = performance.now();
    let fetchedBytes = 0;
    let fetchedShards = 0;
    let timeElapsed = 0;
    const cacheOnly = await hasAllKeys("webllm/model", urls);
    const report = (iter, loading) => {
      const mb = Math.ceil(fetchedBytes / MIB).toString();
      const percent = Math.floor((fetchedBytes * 100) / totalBytes).toString();
      const text = loading
        ? `Loading model from cache[${iter}/${list.length}]: ${mb}MB loaded. ` +
          `${percent}% completed, ${timeElapsed} secs elapsed.`
        : `Fetching param cache[${iter}/${list.length}]: ${mb}MB fetched. ` +
          `${percent}% completed, ${timeElapsed} secs elapsed. It can take a while when we ` +
          "first visit this page to populate the cache. Later refreshes will become faster.";
      this.report(fetchedBytes / totalBytes, timeElapsed, text);
    };
    this.report(fetchedBytes / totalBytes, 0, "Start to fetch params");

    if (!cacheOnly) {
      // As in WebLLM, a failed lane fails the load while the other lanes carry on.
      const downloadRange = async (start, end) => {
        for (let i = start; i < end; i++) {
          await addToCache("webllm/model", urls[i], signal);
          timeElapsed = Math.ceil((performance.now() - tstart) / 1000);
          fetchedBytes += list[i].nbytes;
          report(++fetchedShards, false);
        }
      };
      const size = Math.floor(list.length / DOWNLOAD_LANES);
      const lanes = [];
      for (let lane = 0; lane < DOWNLOAD_LANES; lane++) {
        const end = lane === DOWNLOAD_LANES - 1 ? list.length : (lane + 1) * size;
        lanes.push(downloadRange(lane * size, end));
      }
      await Promise.all(lanes);
    }

    // Loading to the GPU: not abortable, paced over this phase's share of sim_compile_s.
    fetchedBytes = 0;
    fetchedShards = 0;
    const cache = await caches.open("webllm/model");
    const loadStart = performance.now();
    const perShardMs = (this.knobs.compileSeconds * 1000 * LOAD_SHARE) / Math.max(1, list.length);
    for (let i = 0; i < list.length; i++) {
      if ((await cache.match(new Request(urls[i]))) === undefined) {
        throw new Error("Cannot fetch " + urls[i]);
      }
      await sleepUntil(loadStart + (i + 1) * perShardMs, 1);
      fetchedBytes += list[i].nbytes;
      timeElapsed = Math.ceil((performance.now() - tstart) / 1000);
      report(++fetchedShards, true);
    }
  }

  /** The shader phase: reports at most once a second, and always the last one. */
  async compileShaders(key) {
    const tstart = performance.now();
    const totalMs = this.knobs.compileSeconds * 1000 * (1 - LOAD_SHARE);
    let lastReport = tstart;
    for (let k = 1; k <= SHADER_MODULES; k++) {
      await sleepUntil(tstart + (k * totalMs) / SHADER_MODULES, 1);
      if (k === SHADER_MODULES / 2 && this.knobs.deviceLost.has(key)) {
        throw namedError("DeviceLostError", "The GPU device was lost while compiling " +
          "shader modules (simulated: sim_device_lost).");
      }
      const now = performance.now();
      if (now - lastReport < 1000 && k !== SHADER_MODULES) continue;
      lastReport = now;
      const timeElapsed = Math.ceil((now - tstart) / 1000);
      const progress = k / SHADER_MODULES;
      this.report(progress, timeElapsed,
        `Loading GPU shader modules[${k}/${SHADER_MODULES}]: ` +
        `${Math.floor(progress * 100)}% completed, ${timeElapsed} secs elapsed.`);
    }
  }

  // --- the GPU reset (sim_gpu_reset) ------------------------------------------------

  /** A reply finished: count it, and lose the device once the count reaches N. */
  replyFinished() {
    this.finishedReplies += 1;
    const after = this.knobs.gpuResetAfter;
    if (after !== null && !this.gpuResetDone && this.finishedReplies >= after) {
      this.gpuResetDone = true;
      this.loseDevice();
    }
  }

  /**
   * What WebLLM's device.lost handler does (MLCEngine.reloadInternal): log, then
   * unload() inside the worker. The handler still believes the model is loaded, so
   * every later request fails with ModelNotLoadedError until a reload().
   */
  loseDevice() {
    if (this.loaded === null) return;
    console.warn("Device was lost. This can happen due to insufficient memory or other GPU " +
      "constraints. Detailed error: [object GPUDeviceLostInfo] (simulated: sim_gpu_reset=" +
      `${this.knobs.gpuResetAfter}). Please try to reload WebLLM with a less ` +
      "resource-intensive model.");
    this.unload();
  }

  // --- chatting -----------------------------------------------------------------

  /** The loaded model's id, or a WebLLM-style error. */
  selectModel(requestedModel, requestName) {
    if (this.loaded === null) {
      throw namedError("ModelNotLoadedError",
        `Model not loaded before trying to complete ${requestName}. Please ensure you have ` +
        "called MLCEngine.reload(model) to load the model before initiating APIs, or " +
        "initialize your engine using CreateMLCEngine() with a valid model configuration.");
    }
    if (requestedModel && requestedModel !== this.loaded.modelId) {
      throw namedError("SpecifiedModelNotFoundError",
        `Specified model ${requestedModel} for ${requestName} is not found in loaded models. ` +
        `Currently loaded models are:\n${this.loaded.modelId}`);
    }
    return this.loaded.modelId;
  }

  async acquire() {
    let release;
    const previous = this.lock;
    this.lock = new Promise((resolve) => { release = resolve; });
    await previous;
    return release;
  }

  /**
   * One reply as an async generator of events: {token} for each token, then
   * {finishReason, usage}. Prefill (and the context-window check) runs on the first
   * next(), as in WebLLM's streaming.
   */
  async *generate(request, modelId, timeReceived) {
    const release = await this.acquire();
    try {
      this.interruptSignal = false;
      this.message = "";
      const loaded = this.loaded;
      const messages = Array.isArray(request.messages) ? request.messages : [];
      const promptTokens = countPromptTokens(messages.map((m) => contentText(m && m.content)));
      const contextWindow = Number(loaded?.config?.context_window_size);
      if (contextWindow > 0 && promptTokens > contextWindow) {
        throw namedError("ContextWindowSizeExceededError",
          `Prompt tokens exceed context window size: number of prompt tokens: ${promptTokens}; ` +
          `context window size: ${contextWindow}\nConsider shortening the prompt (simulated).`);
      }
      const tokens = tokenize(replyFor(messages));
      const maxTokens = request.max_tokens > 0 ? request.max_tokens : Infinity;
      const limit = Math.min(tokens.length, maxTokens);
      const tps = this.knobs.tps;

      const prefillStart = performance.now();
      if (tps > 0) await sleep(Math.min(1500, (promptTokens / (tps * 25)) * 1000));
      const prefillTime = Math.max(0.001, (performance.now() - prefillStart) / 1000);
      const decodeStart = performance.now();
      let count = 0;
      let finishReason = null;
      while (count < limit) {
        if (count > 0) {
          if (this.interruptSignal) {
            finishReason = "abort";
            break;
          }
          if (tps > 0) await sleepUntil(decodeStart + (count * 1000) / tps, 1);
          if (this.loaded !== loaded) {
            finishReason = "abort"; // unloaded while answering
            break;
          }
        }
        this.message += tokens[count];
        count += 1;
        yield { token: tokens[count - 1] };
      }
      if (finishReason === null) finishReason = count < tokens.length ? "length" : "stop";
      const decodeTokens = Math.max(0, count - 1);
      const decodeTime = decodeTokens > 0 ? (performance.now() - decodeStart) / 1000 : 0;
      this.stats.prefillTokens += promptTokens;
      this.stats.prefillTime += prefillTime;
      this.stats.decodeTokens += decodeTokens;
      this.stats.decodeTime += decodeTime;
      const usage = {
        completion_tokens: count,
        prompt_tokens: promptTokens,
        total_tokens: count + promptTokens,
        extra: {
          e2e_latency_s: (Date.now() - timeReceived) / 1000,
          prefill_tokens_per_s: promptTokens / prefillTime,
          decode_tokens_per_s: decodeTime > 0 ? decodeTokens / decodeTime : 0,
          time_to_first_token_s: prefillTime,
          time_per_output_token_s: decodeTokens > 0 ? decodeTime / decodeTokens : 0,
          latencyBreakdown: undefined,
        },
      };
      // The reply is complete: a GPU reset due now (sim_gpu_reset) comes after it.
      if (loaded !== null && this.loaded === loaded) this.replyFinished();
      yield { finishReason, usage };
    } finally {
      release();
    }
  }

  async chatCompletion(request) {
    const timeReceived = Date.now();
    const modelId = this.selectModel(request.model, "ChatCompletionRequest");
    const id = crypto.randomUUID();
    const created = Math.floor(Date.now() / 1000);
    const events = this.generate(request, modelId, timeReceived);
    if (request.stream) {
      return (async function* streamChunks() {
        for await (const event of events) {
          if (event.token !== undefined) {
            yield {
              id,
              choices: [{
                delta: { content: event.token, role: "assistant" },
                finish_reason: null,
                index: 0,
                logprobs: null,
              }],
              model: modelId,
              object: "chat.completion.chunk",
              created,
            };
            continue;
          }
          yield {
            id,
            choices: [{ delta: {}, finish_reason: event.finishReason, index: 0 }],
            model: modelId,
            object: "chat.completion.chunk",
            created,
          };
          if (request.stream_options?.include_usage === true) {
            yield {
              id,
              choices: [],
              usage: event.usage,
              model: modelId,
              object: "chat.completion.chunk",
              created,
            };
          }
        }
      })();
    }
    let content = "";
    for await (const event of events) {
      if (event.token !== undefined) {
        content += event.token;
        continue;
      }
      return {
        id,
        choices: [{
          finish_reason: event.finishReason,
          index: 0,
          logprobs: null,
          message: { content, role: "assistant" },
        }],
        model: modelId,
        object: "chat.completion",
        created,
        usage: event.usage,
      };
    }
    throw new Error("InternalError: the simulated reply ended without a finish reason.");
  }

  async interruptGenerate() {
    this.interruptSignal = true;
  }

  async resetChat() {
    this.message = "";
  }

  async getMessage(modelId) {
    this.selectModel(modelId, "getMessage");
    return this.message;
  }

  async runtimeStatsText(modelId) {
    this.selectModel(modelId, "runtimeStatsText");
    const s = this.stats;
    return `prefill: ${(s.prefillTokens / s.prefillTime).toFixed(4)} tokens/sec, ` +
      `decoding: ${(s.decodeTokens / s.decodeTime).toFixed(4)} tokens/sec`;
  }

  // --- GPU queries ----------------------------------------------------------------

  requireGpu() {
    if (this.knobs.gpu === "none") {
      throw namedError("WebGPUNotAvailableError",
        "WebGPU is not supported in your current environment (simulated: sim_gpu=none).");
    }
  }

  async getMaxStorageBufferBindingSize() {
    this.requireGpu();
    return this.knobs.gpu === "low" ? 128 * MIB : 1024 * MIB;
  }

  async getGPUVendor() {
    this.requireGpu();
    return "simulated";
  }

  // --- what the simulated engine does not offer -----------------------------------

  unsupported(what) {
    return namedError("UnsupportedSimulationError", `${what} is not offered by the simulated engine.`);
  }

  async completion() {
    throw this.unsupported("completions.create()");
  }

  async embedding() {
    throw this.unsupported("embeddings.create()");
  }

  async forwardTokensAndSample() {
    throw this.unsupported("forwardTokensAndSample()");
  }

  async listResumableSessions() {
    return [];
  }

  async resumeChatCompletion(sessionId) {
    throw namedError("ResumableSessionNotFoundError",
      `No resumable session ${sessionId} (the simulated engine keeps none).`);
  }

  async deleteResumableSession() {}
}

// ---------------------------------------------------------------------------------
// Worker wiring: WebLLM's handler, with the simulated engine in place of MLCEngine.

const handler = new WebWorkerMLCEngineHandler();
const engine = new SimEngine(readKnobs(self.location.search));
handler.engine = engine;
engine.setInitProgressCallback((report) =>
  handler.postMessage({ kind: "initProgressCallback", uuid: "", content: report }));
self.onmessage = (msg) => handler.onmessage(msg);
