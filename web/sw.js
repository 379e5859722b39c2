// LocalChat's service worker: makes the site work offline after one online visit.
//
// Owns one cache per build, "localchat-shell-<build id>", holding the app shell, the
// app's Python archive and every vendored runtime file, as listed by tools/build.py in
// vendor/build.js (a list generated at build time, because cache.addAll fails whole on
// a single 404). A new build changes vendor/build.js, so the browser installs this
// worker again; the new cache is filled, then the old ones are deleted.
// Model weights are not handled here: WebLLM keeps them in its own Cache Storage.

importScripts("vendor/build.js");

const BUILD = self.LOCALCHAT_BUILD;
const CACHE_PREFIX = "localchat-shell-";
const CACHE_NAME = CACHE_PREFIX + BUILD.id;

// Static routes (Chrome 123+): the browser answers these requests from the cache
// itself, without starting this worker. A returning user's boot then costs no worker
// start-up and no JS round trip per file, which measured ~90 ms of a 1.3 s warm boot.
// Navigations and worker scripts with a query string (the simulated engine's knobs) are
// left to the fetch handler below, which ignores the query when it looks in the cache.
// A cache miss on a static route falls back to the network.
function staticRoutes() {
  const base = new URL("./", self.location.href).pathname;
  const source = { cacheName: CACHE_NAME };
  // Only URLs without a query: a cached copy is found by its exact URL here.
  const url = (p) => new URLPattern({ pathname: base + p, search: "" });
  return [
    { condition: { requestMode: "navigate", urlPattern: url("") }, source },
    { condition: { requestMode: "navigate", urlPattern: url("index.html") }, source },
    ...["vendor/*", "js/*", "css/*", "workers/*", "main.py", "pyscript.json",
        "manifest.webmanifest"].map((p) => ({ condition: { urlPattern: url(p) }, source })),
  ];
}

self.addEventListener("install", (event) => {
  if (typeof event.addRoutes === "function") {
    event.waitUntil(event.addRoutes(staticRoutes()).catch((err) => {
      console.warn("LocalChat: static routes unavailable:", err && err.message);
    }));
  }
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE_NAME);
    await cache.addAll(BUILD.files.map((f) => new Request(f, { cache: "reload" })));
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    const names = await caches.keys();
    await Promise.all(names
      .filter((n) => n.startsWith(CACHE_PREFIX) && n !== CACHE_NAME)
      .map((n) => caches.delete(n)));
    await self.clients.claim();
  })());
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || url.pathname.includes("/sim-host/")) return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE_NAME);
    // Query strings choose the engine and its knobs, not the file: ignore them.
    const key = request.mode === "navigate" ? new URL("./", self.location.href).href : request;
    const hit = await cache.match(key, { ignoreSearch: true });
    if (hit && url.search && request.destination === "worker") {
      // A cached response carries its own URL (without the query), and a worker's
      // self.location is its script response's URL: the simulated engine's knobs would
      // be lost. A fresh Response has no URL, so the worker keeps the one it asked for.
      return new Response(hit.body, { status: hit.status, statusText: hit.statusText,
                                      headers: hit.headers });
    }
    if (hit) return hit;
    return fetch(request);
  })());
});
