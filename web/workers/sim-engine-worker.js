// The simulated engine: WebLLM's real worker protocol with the GPU work simulated.
//
// Runs WebLLM's own WebWorkerMLCEngineHandler, with its engine replaced by SimEngine
// below, so the page talks to it exactly as to web/workers/engine-worker.js. Opt-in only
// (`?engine=sim`); it exists so every behaviour can be tested and shown without a GPU.
//
// Knobs: the query string of this worker's own URL (the page passes its own), see the
// "Simulated engine contract" in DESIGN.md: sim_mbps, sim_scale, sim_fail,
// sim_fail_always, sim_compile_s, sim_tps, sim_gpu; and two more failures (README):
// sim_quota=MODEL@PERCENT (storage full at that point of the download) and
// sim_device_lost=MODEL[,…] (the GPU is lost halfway through compiling).
//
// What is real: model files are fetched over HTTP from the model URL in the appConfig
// (the dev server's simulated model host, /sim-host/<scale>/<model_id>), and stored in
// Cache Storage under WebLLM's own cache names and keys ("webllm/config" for
// mlc-chat-config.json; "webllm/model" for tokenizer.json, tensor-cache.json and the
// params shards), so WebLLM's hasModelInCache() sees them. Progress texts, error-name
// prefixes and stream chunks have WebLLM's exact shapes. What is simulated: the download
// speed (paced to sim_mbps), the GPU upload and shader compile (timed to sim_compile_s),
// the GPU features (sim_gpu) and the replies (sim_tps). The model library (.wasm) is not
// fetched.
// Side effects: Cache Storage writes (the caches above, and "localchat-sim", which
// remembers that a `sim_fail` failure already happened so it happens only once).

import { WebWorkerMLCEngineHandler } from "../vendor/web-llm/index.js";

const MIB = 1024 * 1024;
const GPU_LABEL = "Simulated GPU (LocalChat simulated engine)";
const SIM_STATE_CACHE = "localchat-sim";
const SHADER_MODULES = 96; // how many "shader modules" the compile phase reports
const LOAD_SHARE = 0.4; // share of sim_compile_s spent "loading weights to the GPU"
const DOWNLOAD_LANES = 4; // parallel shard downloads, as WebLLM does

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
  const failures = (name) => {
    const map = new Map(); // catalog key -> percent
    for (const part of (params.get(name) || "").split(",")) {
      const [key, percent] = part.trim().split("@");
      const value = Number(percent);
      if (key && percent !== undefined && percent.trim() !== "" && Number.isFinite(value)) {
        map.set(key.trim().toLowerCase(), Math.min(100, Math.max(0, value)));
      }
    }
    return map;
  };
  const gpu = (params.get("sim_gpu") || "f16").toLowerCase();
  return {
    mbps: number("sim_mbps", 50),
    scale: number("sim_scale", 1), // informational: the model URLs carry the scale
    compileSeconds: number("sim_compile_s", 2),
    tps: number("sim_tps", 30),
    gpu: ["f16", "nof16", "low", "none"].includes(gpu) ? gpu : "f16",
    fail: failures("sim_fail"),
    failAlways: failures("sim_fail_always"),
    quotaAt: failures("sim_quota"),
    deviceLost: new Set((params.get("sim_device_lost") || "").split(",")
      .map((key) => key.trim().toLowerCase()).filter(Boolean)),
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

function abortError() {
  return new DOMException("The simulated download was aborted.", "AbortError");
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortError());
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, Math.max(0, ms));
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError());
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Sleep until `due` (a performance.now() time); skips tiny waits to spare timers. */
function sleepUntil(due, signal, slackMs = 0) {
  const wait = due - performance.now();
  if (wait <= slackMs) {
    return signal?.aborted ? Promise.reject(abortError()) : Promise.resolve();
  }
  return sleep(wait, signal);
}

/** WebLLM's cleanModelUrl: the model folder URL ending in /resolve/main/. */
function modelBaseUrl(model) {
  let url = model.endsWith("/") ? model : model + "/";
  if (!/.+\/resolve\/.+\//.test(url)) url += "resolve/main/";
  return new URL(url, self.location.origin).href;
}

// The Cache API backend as WebLLM uses it: one cache per scope, keyed by full URL,
// filled with cache.add() (fetch + put) unless the URL is already there.
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
  const keys = new Set((await cache.keys()).map((request) => request.url));
  return urls.every((url) => keys.has(url));
}

function failMarkerUrl(key, percent) {
  return new URL(`/__localchat_sim__/failed/${encodeURIComponent(key)}@${percent}`,
    self.location.origin).href;
}

/** Shares one download rate between the parallel lanes (bytes/ms; 0 = unlimited). */
class Pacer {
  constructor(mbps) {
    this.bytesPerMs = mbps > 0 ? (mbps * MIB) / 1000 : 0;
    this.start = performance.now();
    this.bytes = 0;
  }

  take(bytes, signal) {
    if (!this.bytesPerMs) return signal?.aborted ? Promise.reject(abortError()) : undefined;
    this.bytes += bytes;
    return sleepUntil(this.start + this.bytes / this.bytesPerMs, signal, 8);
  }
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

  async loadModel(modelId, chatOpts, signal) {
    const reloadStart = performance.now();
    const record = this.findRecord(modelId);
    if (this.appConfig.cacheBackend && this.appConfig.cacheBackend !== "cache") {
      throw namedError("EngineError",
        `The simulated engine stores models with the Cache API only, not "${this.appConfig.cacheBackend}".`);
    }
    const base = modelBaseUrl(record.model);
    const chatConfigUrl = new URL("mlc-chat-config.json", base).href;
    const configData = await fetchWithCache("webllm/config", chatConfigUrl, "arraybuffer", signal);
    const config = {
      ...JSON.parse(new TextDecoder().decode(configData)),
      ...(record.overrides || {}),
      ...(chatOpts || {}),
    };
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
    await fetchWithCache("webllm/model", new URL("tokenizer.json", base).href, "arraybuffer", signal);
    await this.fetchParams(modelId, base, signal);

    // From here on the work is "on the GPU": an abort is ignored, as in WebLLM.
    if (gpu === "nof16" && needsF16) throw this.shaderF16Error();
    await this.compileShaders(catalogKey(modelId));
    this.loaded = { modelId, config };
    this.message = "";
    this.report(1, (performance.now() - reloadStart) / 1000, "Finish loading on WebGPU - " + GPU_LABEL);
  }

  shaderF16Error() {
    return namedError("ShaderF16SupportError",
      "This model requires the WebGPU feature shader-f16, which this GPU does not offer " +
      "(simulated: sim_gpu=nof16). Use the q4f32 variant of the model.");
  }

  /** Failure planned for this attempt: {percent, once, marker} or null. */
  async plannedFailure(modelId) {
    const key = catalogKey(modelId);
    if (key === null) return null;
    if (this.knobs.failAlways.has(key)) {
      return { percent: this.knobs.failAlways.get(key), once: false, marker: null };
    }
    if (!this.knobs.fail.has(key)) return null;
    const percent = this.knobs.fail.get(key);
    const marker = failMarkerUrl(key, percent);
    const state = await caches.open(SIM_STATE_CACHE);
    if ((await state.match(marker)) !== undefined) return null; // it already failed once
    return { percent, once: true, marker };
  }

  /** Download the params shards into "webllm/model", then "load them to the GPU". */
  async fetchParams(modelId, base, signal) {
    const tensorCacheUrl = new URL("tensor-cache.json", base).href;
    const list = (await fetchWithCache("webllm/model", tensorCacheUrl, "json", signal)).records;
    const urls = list.map((shard) => new URL(shard.dataPath, base).href);
    const totalBytes = list.reduce((sum, shard) => sum + shard.nbytes, 0);
    const tstart = performance.now();
    let fetchedBytes = 0;
    let fetchedShards = 0;
    let timeElapsed = 0;
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
    this.report(0, 0, "Start to fetch params");

    if (!(await hasAllKeys("webllm/model", urls))) {
      const failure = await this.plannedFailure(modelId);
      const failAtBytes = failure ? (totalBytes * failure.percent) / 100 : Infinity;
      const lanes = new AbortController(); // stops the other lanes when one fails
      const laneSignal = AbortSignal.any([signal, lanes.signal]);
      const pacer = new Pacer(this.knobs.mbps);
      const cache = await caches.open("webllm/model");
      const key = catalogKey(modelId);
      const quotaAtBytes = this.knobs.quotaAt.has(key)
        ? (totalBytes * this.knobs.quotaAt.get(key)) / 100 : Infinity;
      const checkFailure = async (shard) => {
        if (fetchedBytes >= quotaAtBytes) {
          throw namedError("QuotaExceededError",
            "Failed to execute 'add' on 'Cache': Quota exceeded. (simulated: sim_quota)");
        }
        if (!failure || fetchedBytes < failAtBytes) return;
        if (failure.once) {
          const state = await caches.open(SIM_STATE_CACHE);
          await state.put(failure.marker, new Response(`failed at ${failure.percent}%`));
        }
        throw namedError("NetworkError",
          `Failed to fetch ${shard.dataPath} of ${modelId}: the connection dropped at ` +
          `${failure.percent}% of the download (simulated).`);
      };
      const downloadRange = async (start, end) => {
        for (let i = start; i < end; i++) {
          const shard = list[i];
          if ((await cache.match(urls[i])) === undefined) {
            await checkFailure(shard);
            await this.downloadShard(cache, urls[i], shard, modelId, laneSignal, pacer,
              () => checkFailure(shard));
          }
          timeElapsed = Math.ceil((performance.now() - tstart) / 1000);
          fetchedBytes += shard.nbytes;
          report(++fetchedShards, false);
        }
      };
      const size = Math.floor(list.length / DOWNLOAD_LANES);
      const ranges = [];
      for (let lane = 0; lane < DOWNLOAD_LANES; lane++) {
        ranges.push([lane * size, lane === DOWNLOAD_LANES - 1 ? list.length : (lane + 1) * size]);
      }
      try {
        await Promise.all(ranges.map(([start, end]) => downloadRange(start, end)));
      } catch (err) {
        lanes.abort();
        throw err;
      }
    }

    // Loading to the GPU: not abortable, paced over this phase's share of sim_compile_s.
    fetchedBytes = 0;
    fetchedShards = 0;
    const cache = await caches.open("webllm/model");
    const loadStart = performance.now();
    const perShardMs = (this.knobs.compileSeconds * 1000 * LOAD_SHARE) / Math.max(1, list.length);
    for (let i = 0; i < list.length; i++) {
      if ((await cache.match(urls[i])) === undefined) throw new Error("Cannot fetch " + urls[i]);
      await sleepUntil(loadStart + (i + 1) * perShardMs, undefined, 1);
      fetchedBytes += list[i].nbytes;
      timeElapsed = Math.ceil((performance.now() - tstart) / 1000);
      report(++fetchedShards, true);
    }
  }

  /** Fetch one shard at the paced rate and store it as one complete cache entry. */
  async downloadShard(cache, url, shard, modelId, signal, pacer, checkFailure) {
    const networkError = (why) => namedError("NetworkError",
      `Failed to fetch ${shard.dataPath} of ${modelId}: ${why} (simulated).`);
    let response;
    try {
      response = await fetch(url, { signal, cache: "no-store" });
    } catch (err) {
      if (err && err.name === "AbortError") throw err;
      throw networkError(String((err && err.message) || err));
    }
    if (!response.ok) {
      throw networkError(`HTTP ${response.status} ${response.statusText}`.trim());
    }
    const reader = response.body.getReader();
    const chunks = [];
    try {
      for (;;) {
        let step;
        try {
          step = await reader.read();
        } catch (err) {
          if (err && err.name === "AbortError") throw err;
          throw networkError(String((err && err.message) || err));
        }
        if (step.done) break;
        chunks.push(step.value);
        await checkFailure();
        await pacer.take(step.value.byteLength, signal);
      }
    } catch (err) {
      reader.cancel().catch(() => {});
      throw err;
    }
    if (signal.aborted) throw abortError();
    const headers = { "Content-Type": response.headers.get("Content-Type") || "application/octet-stream" };
    await cache.put(new Request(url), new Response(new Blob(chunks), { status: 200, headers }));
  }

  /** The shader phase: reports at most once a second, and always the last one. */
  async compileShaders(key) {
    const tstart = performance.now();
    const totalMs = this.knobs.compileSeconds * 1000 * (1 - LOAD_SHARE);
    let lastReport = tstart;
    for (let k = 1; k <= SHADER_MODULES; k++) {
      await sleepUntil(tstart + (k * totalMs) / SHADER_MODULES, undefined, 1);
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

  // --- chatting -----------------------------------------------------------------

  /** The loaded model's id, or a WebLLM-style error. */
  selectModel(requestedModel, requestName) {
    if (this.loaded === null) {
      throw namedError("ModelNotLoadedError",
        `Model not loaded before trying to complete ${requestName}. Please ensure you have ` +
        "called MLCEngine.reload(model) to load the model before initiating APIs.");
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
      const chars = messages.reduce((sum, m) => sum + contentText(m && m.content).length, 0);
      const promptTokens = Math.max(1, Math.ceil(chars / 4));
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
          if (tps > 0) await sleepUntil(decodeStart + (count * 1000) / tps, undefined, 1);
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
