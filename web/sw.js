// igcam's service worker: makes the page cross-origin isolated on hosts that cannot send the
// headers themselves (a plain static server, GitHub Pages, `python3 -m http.server`). It adds
// COOP/COEP to every same-origin response, which lets the page use SharedArrayBuffer and so
// run the CPU path on a pool of Web Workers (the threaded wasm build). A host that sends the
// headers itself does not need it: the page then never registers it.
self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("fetch", (event) => {
  const request = event.request;
  // Leave other origins and Chromium's "only-if-cached" probes to the browser.
  if (new URL(request.url).origin !== self.location.origin) return;
  if (request.cache === "only-if-cached" && request.mode !== "same-origin") return;
  event.respondWith(fetch(request).then((response) => {
    if (response.status === 0) return response;
    const headers = new Headers(response.headers);
    headers.set("Cross-Origin-Opener-Policy", "same-origin");
    headers.set("Cross-Origin-Embedder-Policy", "require-corp");
    return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
  }));
});
