// Opens the built site (dist/) in headless Chromium, follows a run, and saves a
// full-page screenshot: a look at the page as a person would see it.
//
//   node tests/browser/screenshot.mjs [QUERY] [--cpu] [--seconds N] [--out FILE]
//
// QUERY is the page's URL query (e.g. "preset=toy&autoplay=1"); --cpu launches
// Chromium without WebGPU (the CPU fallback); the script stops when the run is
// finished, fails, or after N seconds (default 60), printing the page's state
// as it changes. Default output: target/browser-artifacts/screenshot.png.
import { serve, launch, watchConsole, artifactPath } from './lib.mjs';

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args.splice(i, 2)[1] : fallback;
};
const cpu = args.includes('--cpu') && args.splice(args.indexOf('--cpu'), 1).length > 0;
const seconds = Number(flag('--seconds', '60'));
const out = flag('--out', await artifactPath('screenshot.png'));
const query = args[0] ?? '';

const site = await serve();
const { context, close } = await launch({ webgpu: !cpu });
try {
  const page = await context.newPage();
  const log = watchConsole(page);
  await page.goto(`${site.url}?${query}`);
  const t0 = Date.now();
  let last = '';
  while (Date.now() - t0 < seconds * 1000) {
    await page.waitForTimeout(1000);
    const s = await page.evaluate(() => [
      document.body.dataset.state,
      document.getElementById('progress').textContent,
      document.getElementById('backend').textContent,
      document.getElementById('message').textContent,
    ].join(' | '));
    if (s !== last) console.log(`${((Date.now() - t0) / 1000).toFixed(1)} s: ${s}`);
    last = s;
    if (/^(finished|error)/.test(s)) break;
  }
  await page.screenshot({ path: out, fullPage: true });
  console.log(`screenshot: ${out}`);
  const problems = log.filter((l) => /error/i.test(l));
  if (problems.length) console.log(problems.join('\n'));
} finally {
  await close();
  await site.close();
}
