// End-to-end tests of the built explainer (dist/) in headless Chromium.
//
// Run by scripts/web-test.sh after `trunk build --release`; needs Debian's
// /usr/bin/chromium and the native CLI at target/release/curvlab. Artifacts
// (screenshots, exported files) go to target/browser-artifacts/.
//
// Tolerances against the native CLI (same configuration and seed; the CLI
// runs on burn's CPU backend):
// - CPU fallback in the browser (flex compiled to wasm32): the same
//   arithmetic up to SIMD width and reduction order, so 1e-4 relative on
//   losses, accuracies and Jacobian norms, 2e-3 on eigenvalues (Lanczos
//   stops at a 1e-3 relative residual).
// - WebGPU (SwiftShader in CI): different kernels, f32 throughout, so 2e-3
//   relative on losses and Jacobian norms and 1e-2 on eigenvalues; accuracies
//   to one example in 64.
// Measured agreement is printed by each test (worst relative difference per field).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ROOT, serve, launch, watchConsole, waitForState, download, artifactPath, nativeRun,
  compareRows, comparableConfig,
} from './lib.mjs';

const FIXTURE = join(ROOT, 'tests', 'browser', 'fixtures', 'small-sharpening.toml');
// The "sharpening" preset at test scale; mirrors fixtures/small-sharpening.toml.
const SMALL = 'preset=sharpening&n=64&ntest=64&samples=64&width=32&depth=2&act=tanh&loss=square'
  + '&lr=0.06&batch=0&seed=0&steps=20&every=5';
const TRAIN_TIMEOUT = Number(process.env.CURVLAB_TRAIN_TIMEOUT_MS ?? 480_000);

const CPU_TOL = {
  train_loss: [1e-7, 1e-4], train_loss_kl: [1e-7, 1e-4], test_loss: [1e-7, 1e-4],
  train_acc: [1e-9, 0], test_acc: [1e-9, 0],
  sharpness: [1e-5, 2e-3], gn_sharpness: [1e-5, 2e-3],
  jac_logit_max: [1e-6, 1e-4], jac_logit_mean: [1e-6, 1e-4],
  jac_softmax_max: [1e-6, 1e-4], jac_softmax_mean: [1e-6, 1e-4],
  bound_b: [1e-6, 1e-4],
};
const GPU_TOL = {
  train_loss: [1e-6, 2e-3], train_loss_kl: [1e-6, 2e-3], test_loss: [1e-6, 2e-3],
  train_acc: [1 / 64 + 1e-9, 0], test_acc: [1 / 64 + 1e-9, 0],
  sharpness: [1e-4, 1e-2], gn_sharpness: [1e-4, 1e-2],
  jac_logit_max: [1e-5, 2e-3], jac_logit_mean: [1e-5, 2e-3],
  jac_softmax_max: [1e-5, 2e-3], jac_softmax_mean: [1e-5, 2e-3],
  bound_b: [1e-5, 2e-3],
};

let site;
let native;
before(async () => {
  site = await serve();
  native = await nativeRun(FIXTURE);
  assert.equal(native.rows.length, 5, 'the CLI measured steps 0, 5, 10, 15, 20');
});
after(async () => site?.close());

/** Opens `query`, trains to the end, checks the backend, exports and compares with the CLI. */
async function trainAndCompare(t, { webgpu, tol, shot }) {
  const { context, close } = await launch({ webgpu });
  try {
    const page = await context.newPage();
    const log = watchConsole(page);
    t.after(() => { if (log.length) console.log(log.join('\n')); });
    await page.goto(`${site.url}?${SMALL}&autoplay=1`);
    await page.waitForFunction(() => document.body.dataset.backend, null, { timeout: 60_000 });
    const backend = await page.textContent('#backend');
    console.log(backend);
    if (webgpu) {
      assert.equal(await page.evaluate(() => document.body.dataset.backend), 'webgpu', backend);
      assert.match(backend, /WebGPU/);
      assert.match(backend, /software adapter/i, 'SwiftShader is reported as a software adapter');
    } else {
      assert.equal(await page.evaluate(() => document.body.dataset.backend), 'cpu', backend);
      assert.match(backend, /CPU/);
      assert.match(backend, /no adapter|granted no adapter|no WebGPU/i, 'the reason for the fallback is shown');
    }
    const t0 = Date.now();
    await waitForState(page, 'finished', TRAIN_TIMEOUT);
    console.log(`trained 20 steps with 5 measurements in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    await page.screenshot({ path: await artifactPath(shot), fullPage: true });

    const { bytes } = await download(page, 'export-json');
    await writeFile(await artifactPath(shot.replace('.png', '-metrics.json')), bytes);
    const exported = JSON.parse(bytes.toString('utf8'));
    assert.equal(exported.runs.length, 1);
    const run = exported.runs[0];
    assert.equal(run.config.backend, webgpu ? 'wgpu' : 'cpu');
    assert.deepEqual(comparableConfig(run.config), comparableConfig(native.config),
      'the page ran the same configuration as the CLI');
    assert.deepEqual(run.rows.map((r) => r.step), [0, 5, 10, 15, 20]);
    const { failures, worst } = compareRows(run.rows, native.rows, tol);
    console.log(`worst relative difference per field (${webgpu ? 'WebGPU' : 'CPU'} vs native):`,
      JSON.stringify(Object.fromEntries(Object.entries(worst).map(([k, v]) => [k, Number(v.toExponential(2))]))));
    assert.deepEqual(failures, []);
    // The plots show what was measured: one sharpness polyline with 5 points, and the 2/η line.
    const pts = await page.$eval('#plot-sharpness polyline', (p) => p.getAttribute('points').trim().split(/\s+/).length);
    assert.equal(pts, 5);
    assert.match(await page.textContent('#plot-sharpness'), /2\/η = 33\.3/);
    return { page, context };
  } finally {
    await close();
  }
}

test('WebGPU: picks the adapter, trains the preset, matches the native CLI', async (t) => {
  await trainAndCompare(t, { webgpu: true, tol: GPU_TOL, shot: 'webgpu-trained.png' });
});

test('no WebGPU adapter: falls back to the CPU, trains, matches the native CLI', async (t) => {
  await trainAndCompare(t, { webgpu: false, tol: CPU_TOL, shot: 'cpu-trained.png' });
});

test('WebGPU device lost: training moves to the CPU and still finishes', async (t) => {
  const { context, close } = await launch({ webgpu: true });
  try {
    const page = await context.newPage();
    const log = watchConsole(page);
    t.after(() => { if (log.length) console.log(log.join('\n')); });
    await page.goto(`${site.url}?${SMALL}&autoplay=1`);
    await page.waitForFunction(() => document.body.dataset.backend === 'webgpu', null, { timeout: 60_000 });
    await waitForState(page, 'playing', 60_000);
    // What a driver reset does: the device goes away under a running computation.
    await page.evaluate(() => window.curvlabDebug.loseDevice());
    await page.waitForFunction(() => document.body.dataset.backend === 'cpu', null, { timeout: 60_000 });
    assert.match(await page.textContent('#backend'), /moved off WebGPU after: the WebGPU device was lost/);
    assert.match(await page.textContent('#message'), /continuing on the CPU/);
    await waitForState(page, 'finished', 120_000);
    const run = JSON.parse((await download(page, 'export-json')).bytes.toString()).runs[0];
    assert.equal(run.config.backend, 'cpu');
    const { failures } = compareRows(run.rows, native.rows, CPU_TOL);
    assert.deepEqual(failures, [], 'the restarted run is the CLI\'s run');
  } finally {
    await close();
  }
});

test('controls: the URL restores every control, edits update the URL, step and reset', async () => {
  const { context, close } = await launch({ webgpu: false });
  try {
    const page = await context.newPage();
    // A non-default value for every control (cf. settings.rs, every_field_round_trips_through_the_url).
    const want = {
      data: 'toy', k: '5', d: '17', shape: 'rings', noise: '0.07', classes: '3', n: '48', ntest: '24',
      sin: '2.5', model: 'mlp', width: '12', depth: '3', channels: '4,8', act: 'relu', loss: 'ce',
      ls: '0.15', tscale: '3', lr: '0.0125', batch: '16', mom: '0.9', wd: '0.0005', seed: '42',
      steps: '7', every: '7', samples: '20', gn: '0', vary: 'none', values: '0.01,0.02', backend: 'cpu',
    };
    const query = new URLSearchParams(want).toString();
    await page.goto(`${site.url}?${query}`);
    await waitForState(page, ['ready', 'paused'], 60_000);
    const ids = await page.$$eval('[id^="ctl-"]', (els) => els.map((e) => e.id.slice(4)).filter((k) => k !== 'file'));
    assert.deepEqual([...ids].sort(), Object.keys(want).sort(), 'the test sets every control the page has');
    for (const [key, value] of Object.entries(want)) {
      const got = await page.$eval(`#ctl-${key}`, (e) => (e.type === 'checkbox' ? (e.checked ? '1' : '0') : e.value));
      assert.equal(got, value, `control ${key}`);
    }
    // The page rewrote the URL with every control, and it still reads back the same.
    const params = new URL(page.url()).searchParams;
    for (const [key, value] of Object.entries(want)) assert.equal(params.get(key), value, `URL key ${key}`);

    // Edit a control: the URL follows, and a reload restores it.
    await page.selectOption('#ctl-act', 'gelu');
    await page.waitForFunction(() => new URL(location.href).searchParams.get('act') === 'gelu');
    await page.fill('#ctl-ls', '0.3');
    await page.press('#ctl-ls', 'Enter');
    await page.waitForFunction(() => new URL(location.href).searchParams.get('ls') === '0.3');
    await page.reload();
    await waitForState(page, ['ready', 'paused'], 60_000);
    assert.equal(await page.inputValue('#ctl-act'), 'gelu');
    assert.equal(await page.inputValue('#ctl-ls'), '0.3');

    // An invalid value is flagged beside its control and not applied.
    await page.fill('#ctl-lr', '-1');
    await page.press('#ctl-lr', 'Enter');
    assert.match(await page.textContent('#err-lr'), /between/);
    assert.equal(new URL(page.url()).searchParams.get('lr'), '0.0125');

    // Step: one optimiser step (and the step-0 measurement); reset: same initial weights.
    await page.click('#btn-step');
    await page.waitForFunction(() => /step 1 \//.test(document.getElementById('progress').textContent));
    const first = await download(page, 'export-json');
    const rows1 = JSON.parse(first.bytes.toString()).runs[0].rows;
    assert.deepEqual(rows1.map((r) => r.step), [0]);
    await page.click('#btn-reset');
    await waitForState(page, ['ready', 'paused'], 60_000);
    await page.keyboard.press('s'); // keyboard shortcut for Step
    await page.waitForFunction(() => /step 1 \//.test(document.getElementById('progress').textContent));
    const second = await download(page, 'export-json');
    const rows2 = JSON.parse(second.bytes.toString()).runs[0].rows;
    for (const f of ['train_loss', 'test_loss', 'sharpness', 'jac_softmax_max']) {
      assert.equal(rows2[0][f], rows1[0][f], `${f} at step 0 after reset (same seed, same initialisation)`);
    }
  } finally {
    await close();
  }
});

test('a file that is not CIFAR gives one clear message, and the page keeps working', async () => {
  const { context, close } = await launch({ webgpu: false });
  try {
    const page = await context.newPage();
    const log = watchConsole(page);
    await page.goto(`${site.url}?preset=toy&steps=3&every=3&n=30&ntest=30&samples=30&width=8`);
    await waitForState(page, ['ready', 'paused'], 60_000);
    await page.selectOption('#ctl-data', 'cifar');
    await page.waitForSelector('#ctl-file', { state: 'visible' });
    await page.setInputFiles('#ctl-file', {
      name: 'holiday.jpg', mimeType: 'image/jpeg', buffer: Buffer.from('\xff\xd8\xff\xe0 not a CIFAR file at all'),
    });
    await page.waitForFunction(() => /holiday\.jpg/.test(document.getElementById('message').textContent));
    const msg = await page.textContent('#message');
    assert.match(msg, /CIFAR-10 binary/);
    assert.ok(!msg.includes('\n'), 'one line');
    assert.ok(!log.some((l) => l.includes('pageerror') || l.includes('crashed')), log.join('\n'));
    // Back to the toy data: trains to the end.
    await page.selectOption('#ctl-data', 'toy');
    await waitForState(page, ['ready', 'paused'], 60_000);
    await page.click('#btn-play');
    await waitForState(page, 'finished', 120_000);
  } finally {
    await close();
  }
});

test('embed mode shows the plots and the chosen controls, inside an iframe', async () => {
  const { context, close } = await launch({ webgpu: false });
  try {
    const page = await context.newPage();
    const src = `${site.url}?preset=toy&steps=4&every=2&n=30&ntest=30&samples=30&width=8&embed=1&show=play,ls&autoplay=1`;
    await page.setContent(`<!doctype html><title>host</title><h1>A project page</h1>
      <iframe id="f" src="${src}" width="900" height="700" style="border:0" title="curvlab"></iframe>`);
    const frame = await (await page.waitForSelector('#f')).contentFrame();
    await frame.waitForFunction(() => document.body.dataset.state === 'finished', null, { timeout: 120_000 });
    assert.equal(await frame.isVisible('#plot-sharpness svg'), true);
    assert.equal(await frame.isVisible('#btn-play'), true);
    assert.equal(await frame.isVisible('#ctl-ls'), true);
    for (const hidden of ['header.site', '#explain', '#ctl-lr', '#btn-reset', '#exports', '#presets']) {
      assert.equal(await frame.isVisible(hidden), false, `${hidden} is hidden in embed mode`);
    }
    assert.match(await frame.getAttribute('#open-full', 'href'), /preset|data=toy/);
    await page.screenshot({ path: await artifactPath('embed-iframe.png') });
  } finally {
    await close();
  }
});

test('exports: CSV, SVG and PNG of a finished run', async () => {
  const { context, close } = await launch({ webgpu: false });
  try {
    const page = await context.newPage();
    await page.goto(`${site.url}?preset=toy&steps=4&every=2&n=30&ntest=30&samples=30&width=8&vary=ls&values=0,0.2&autoplay=1`);
    await waitForState(page, 'finished', 120_000);
    const csv = (await download(page, 'export-csv')).bytes.toString();
    const lines = csv.trim().split('\n');
    assert.equal(lines.length, 1 + 2 * 3, 'header + 3 rows for each of 2 runs');
    assert.match(lines[0], /^run,label,step,/);
    const svg = (await download(page, 'export-svg')).bytes.toString();
    assert.ok(svg.startsWith('<svg') && svg.includes('α = 0.2'));
    assert.equal((svg.match(/<polyline/g) ?? []).length >= 8, true);
    const png = (await download(page, 'export-png')).bytes;
    assert.deepEqual([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], 'a PNG file');
    assert.ok(png.length > 10_000);
    await writeFile(await artifactPath('export-plots.png'), png);
  } finally {
    await close();
  }
});

test('CIFAR-10 files from disk: a small CNN trains on the CPU and matches the native CLI', async () => {
  // The real CIFAR-10 subset beside the repository (see README): the same files the CLI reads.
  const dir = join(ROOT, '..', 'shared', 'data', 'cifar10-5k');
  const tmp = await mkdtemp(join(tmpdir(), 'curvlab-cifar-'));
  const toml = join(tmp, 'cifar.toml');
  await writeFile(toml, [
    'seed = 0', 'steps = 4', 'measure_every = 2',
    '[data]', 'kind = "cifar"', `dir = ${JSON.stringify(dir)}`, 'train_samples = 100', 'test_samples = 100',
    '[model]', 'kind = "cnn"', 'channels = [8, 16]', 'activation = "relu"',
    '[loss]', 'kind = "crossentropy"',
    '[optim]', 'lr = 0.05',
    '[measure]', 'samples = 100', '',
  ].join('\n'));
  const cli = await nativeRun(toml);
  await rm(tmp, { recursive: true, force: true });
  const { context, close } = await launch({ webgpu: false });
  try {
    const page = await context.newPage();
    await page.goto(`${site.url}?preset=cifar&n=100&ntest=100&samples=100&steps=4&every=2&seed=0&backend=cpu`);
    // No files yet: the page asks for them.
    await page.waitForFunction(() => /CIFAR-10 binary files/.test(document.getElementById('message').textContent));
    await page.setInputFiles('#ctl-file', [join(dir, 'data_batch_1.bin'), join(dir, 'test_batch.bin')]);
    await waitForState(page, ['ready', 'paused'], 60_000);
    assert.match(await page.textContent('#data-name'), /cifar10:data_batch_1\.bin \(train: 100\)/);
    await page.click('#btn-play');
    await waitForState(page, 'finished', 180_000);
    const run = JSON.parse((await download(page, 'export-json')).bytes.toString()).runs[0];
    const strip = (c) => { const { data: { dir: _dir, ...data }, ...rest } = comparableConfig(c); return { ...rest, data }; };
    assert.deepEqual(strip(run.config), strip(cli.config), 'the same configuration as the CLI (but the data path)');
    const { failures, worst } = compareRows(run.rows, cli.rows, CPU_TOL);
    console.log('CIFAR CNN, CPU vs native, worst relative difference:',
      JSON.stringify(Object.fromEntries(Object.entries(worst).map(([k, v]) => [k, Number(v.toExponential(2))]))));
    assert.deepEqual(failures, []);
    await page.screenshot({ path: await artifactPath('cifar-cnn-cpu.png'), fullPage: true });
  } finally {
    await close();
  }
});
