// The training worker's loader (index.html copies it to the site; the page
// starts it with `new Worker("./worker_loader.js")` when training is first
// asked for). It replaces trunk's loader shim to report the download of the
// trainer's WebAssembly module, the larger part of the site, to the page:
// `{trainer: {loaded, total}}` about ten times a second (bytes; total 0 when
// the server does not say, or compresses on the way), and `total = loaded`
// once all of it is in. A failure is thrown where the page sees it (the
// worker's error event).
importScripts('./worker.js');

(async () => {
  const res = await fetch('./worker_bg.wasm');
  if (!res.ok) throw new Error(`loading the trainer failed: HTTP ${res.status} for worker_bg.wasm`);
  const total = res.headers.get('content-encoding') ? 0 : Number(res.headers.get('content-length')) || 0;
  const reader = res.body.getReader();
  const chunks = [];
  let loaded = 0;
  let last = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    if (Date.now() - last >= 100) {
      last = Date.now();
      postMessage({ trainer: { loaded, total } });
    }
  }
  postMessage({ trainer: { loaded, total: loaded } });
  const bytes = new Uint8Array(loaded);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.length;
  }
  await wasm_bindgen({ module_or_path: bytes });
})().catch((e) => setTimeout(() => { throw e; }));
