// The real chat engine: WebLLM's own worker handler, the production default.
//
// Runs in a dedicated module worker created by web/js/engine-bridge.js. It downloads
// model weights into Cache Storage ("webllm/config", "webllm/wasm", "webllm/model"),
// uploads them to the GPU and answers chat requests; the main thread talks to it
// through WebLLM's WebWorkerMLCEngine. Errors reach the page as strings
// ("ShaderF16SupportError: …"): the bridge turns them into real Errors.

import { WebWorkerMLCEngineHandler } from "../vendor/web-llm/index.js";

const handler = new WebWorkerMLCEngineHandler();
self.onmessage = (msg) => handler.onmessage(msg);
