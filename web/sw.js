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

self.addEventListener("install", (event) => {
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
