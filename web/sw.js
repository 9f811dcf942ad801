// The service worker: the app starts without the network for static files, and a new
// deploy is used from the next load on. build.py fills in BUILD and PRECACHE (every
// file the app shell needs: the page, its modules, the runtimes, the Python).
//
// * assets/ (content-hashed, immutable): from the cache, else the network (and kept);
// * the page (navigations): from the network, so a new deploy is seen at once; from
//   the cache when offline;
// * nothing else (the API, WebSocket): never touched.
// Installing a new version precaches its files; activating it drops the caches of
// older versions but the one before (a tab still running it may need its files).

const BUILD = /*BUILD*/"";
const PRECACHE = /*PRECACHE*/[];
const PREFIX = "intellacc-shell-";
const CACHE = PREFIX + BUILD;
// After a panic wipe (the page says so), keep nothing: no more caching, caches gone.
let wiped = false;

self.addEventListener("message", (event) => {
  if (event.data === "panic") {
    wiped = true;
    event.waitUntil(caches.keys().then((keys) => Promise.all(keys.map((k) => caches.delete(k)))));
  }
});

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    // cache: "reload": the HTTP cache must not hand us a stale page.
    await cache.addAll(PRECACHE.map((path) => new Request(path, { cache: "reload" })));
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    const ours = (await caches.keys()).filter((k) => k.startsWith(PREFIX) && k !== CACHE);
    // Keep the newest other one (the previous deploy); drop the rest.
    for (const key of ours.slice(0, -1)) await caches.delete(key);
    await self.clients.claim();
  })());
});

function isAsset(url) {
  return url.origin === self.location.origin && url.pathname.startsWith(new URL("assets/", self.registration.scope).pathname);
}

async function fromCacheOrNetwork(request) {
  const hit = await caches.match(request);
  if (hit !== undefined) return hit;
  const response = await fetch(request);
  if (response.ok) {
    const copy = response.clone();
    caches.open(CACHE).then((cache) => cache.put(request, copy)).catch(() => {});
  }
  return response;
}

async function page(request) {
  try {
    const response = await fetch(request);
    if (response.ok) {
      const copy = response.clone();
      caches.open(CACHE).then((cache) => cache.put(new URL("./", self.registration.scope).href, copy))
        .catch(() => {});
    }
    return response;
  } catch (e) {
    const cached = await caches.match(new URL("./", self.registration.scope).href);
    if (cached !== undefined) return cached;
    throw e;
  }
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET" || wiped) return;
  const url = new URL(request.url);
  if (request.mode === "navigate" && url.origin === self.location.origin
      && (url.pathname === new URL("./", self.registration.scope).pathname
          || url.pathname.endsWith("/index.html"))) {
    event.respondWith(page(request));
  } else if (isAsset(url)) {
    event.respondWith(fromCacheOrNetwork(request));
  }
});
