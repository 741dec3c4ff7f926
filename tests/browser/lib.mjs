// Helpers for the browser tests: a static server for dist/, headless
// Chromium with or without WebGPU, the native CLI as reference, and the
// tolerances that compare the two.

import { createServer } from 'node:http';
import { readFile, mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, normalize, resolve, extname, dirname } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DIST = process.env.CURVLAB_DIST ?? join(ROOT, 'dist');
export const ARTIFACTS = process.env.CURVLAB_ARTIFACTS ?? join(ROOT, 'target', 'browser-artifacts');
export const CLI = process.env.CURVLAB_BIN ?? join(ROOT, 'target', 'release', 'curvlab');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
};

/** Serves `dir` on 127.0.0.1 (a free port); resolves to { url, close }. */
export async function serve(dir = DIST) {
  const root = resolve(dir);
  await stat(join(root, 'index.html')); // fail early: the site is not built
  const server = createServer(async (req, res) => {
    try {
      const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
      const file = normalize(join(root, path.endsWith('/') ? path + 'index.html' : path));
      if (!file.startsWith(root)) throw new Error('outside the site');
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
      res.end(body);
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
    }
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address();
  return { url: `http://127.0.0.1:${port}/`, close: () => new Promise((ok) => server.close(ok)) };
}

/** Flags that give headless Chromium a WebGPU adapter through SwiftShader (Vulkan on the CPU). */
const WEBGPU_FLAGS = [
  '--enable-unsafe-webgpu',
  '--enable-unsafe-swiftshader',
  '--enable-features=Vulkan',
  '--use-vulkan=swiftshader',
  '--use-angle=swiftshader',
  '--use-webgpu-adapter=swiftshader',
];

/**
 * Launches headless Chromium with a fresh profile. With `webgpu: false` the
 * browser still has `navigator.gpu` but grants no adapter (no
 * --enable-unsafe-webgpu), which is what the CPU fallback must handle.
 */
export async function launch({ webgpu }) {
  const profile = await mkdtemp(join(tmpdir(), 'curvlab-chromium-'));
  const args = [
    '--headless=new',
    '--no-sandbox',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-quic',
    `--user-data-dir=${profile}`,
    ...(webgpu ? WEBGPU_FLAGS : []),
  ];
  // playwright-core passes its own --user-data-dir unless launchPersistentContext is used.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: args.filter((a) => !a.startsWith('--user-data-dir') && a !== '--headless=new'),
    ignoreDefaultArgs: ['--disable-gpu'],
    viewport: { width: 1280, height: 900 },
    acceptDownloads: true,
  });
  const close = async () => {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  };
  return { context, close };
}

/** Collects console errors and page errors of `page` (the test prints them on failure). */
export function watchConsole(page) {
  const log = [];
  page.on('console', (m) => log.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log.push(`[pageerror] ${e.message}`));
  return log;
}

/** Waits until body[data-state] is one of `states`; throws with the page's message otherwise. */
export async function waitForState(page, states, timeout) {
  const want = Array.isArray(states) ? states : [states];
  try {
    await page.waitForFunction(
      (w) => w.includes(document.body.dataset.state),
      want,
      { timeout, polling: 250 },
    );
  } catch (e) {
    const state = await page.evaluate(() => document.body.dataset.state);
    const msg = await page.evaluate(() => document.getElementById('message')?.textContent ?? '');
    const progress = await page.evaluate(() => document.getElementById('progress')?.textContent ?? '');
    throw new Error(`state ${state} (wanted ${want.join('|')}), progress "${progress}", message "${msg}": ${e.message}`);
  }
}

/** Clicks an export button and returns the downloaded file's bytes. */
export async function download(page, buttonId) {
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click(`#${buttonId}`)]);
  const path = await dl.path();
  return { name: dl.suggestedFilename(), bytes: await readFile(path) };
}

export async function artifactPath(name) {
  await mkdir(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, name);
}

/** Runs the native CLI on `toml` (a config file) and returns { config, rows }. */
export async function nativeRun(toml) {
  const out = await mkdtemp(join(tmpdir(), 'curvlab-native-'));
  try {
    await promisify(execFile)(CLI, ['run', '--config', toml, '--out', out, '--quiet'], { timeout: 600_000 });
    const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
    const rows = (await readFile(join(out, 'metrics.jsonl'), 'utf8'))
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l));
    return { config, rows };
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

/**
 * Compares browser rows with native rows field by field. `tol` maps a field
 * to [abs, rel]: |browser − native| ≤ abs + rel·|native|. Returns
 * { failures, worst } where worst maps each field to its largest relative difference.
 */
export function compareRows(browser, native, tol) {
  const failures = [];
  const worst = {};
  if (browser.length !== native.length) {
    failures.push(`${browser.length} rows in the browser, ${native.length} from the CLI`);
  }
  for (let i = 0; i < Math.min(browser.length, native.length); i++) {
    const b = browser[i];
    const n = native[i];
    if (b.step !== n.step) failures.push(`row ${i}: step ${b.step} vs ${n.step}`);
    for (const [field, [abs, rel]] of Object.entries(tol)) {
      const x = b[field];
      const y = n[field];
      if (y === null || y === undefined) {
        if (x !== null && x !== undefined) failures.push(`row ${i} ${field}: ${x} in the browser, none natively`);
        continue;
      }
      if (typeof x !== 'number') {
        failures.push(`row ${i} ${field}: missing in the browser (native ${y})`);
        continue;
      }
      const d = Math.abs(x - y);
      worst[field] = Math.max(worst[field] ?? 0, d / Math.max(Math.abs(y), 1e-30));
      if (!(d <= abs + rel * Math.abs(y))) {
        failures.push(`row ${i} (step ${n.step}) ${field}: browser ${x}, native ${y} (allowed ${abs} + ${rel}·|native|)`);
      }
    }
  }
  return { failures, worst };
}

/** The run configuration without what legitimately differs between the page and the CLI. */
export function comparableConfig(cfg) {
  const { backend, curvlab_version, git_revision, ...rest } = cfg;
  return rest;
}
