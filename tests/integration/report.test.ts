import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { cai } from '../helpers/cli';
import { ROOT } from '../../local/paths';

/**
 * A real local run (npm start's demo: 2,000 labelled synthetic galaxies), its report made by
 * `cai report`, opened in Debian's chromium (installed by scripts/browser-env.sh): every plot must
 * have rendered, with no console errors. The screenshot is kept under .cai/test-output/.
 */
const work = mkdtempSync(join(tmpdir(), 'cai-report-'));
const state = join(work, '.cai');
const CHROMIUM = process.env.CAI_CHROMIUM ?? '/usr/bin/chromium';
const SCREENSHOT = join(ROOT, '.cai', 'test-output', 'report.png');

function start(): Promise<{ status: number | null; last: { runId: string; report: string } }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'dist', 'cli', 'cai.js'), 'start', '--dir', state, '--workers', '2'], { cwd: ROOT });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.resume();
    child.on('error', reject);
    child.on('close', (status) => {
      const lines = stdout.trim().split('\n');
      resolve({ status, last: JSON.parse(lines[lines.length - 1]) });
    });
  });
}

let browser: Browser;
beforeAll(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});
afterAll(async () => browser?.close());

test('cai report of a real local run renders every plot in a headless browser', async () => {
  const run = await start();
  expect(run.status).toBe(0);
  // npm start wrote one already; cai report makes it again from the stack's S3 and DynamoDB.
  expect(statSync(run.last.report).size).toBeGreaterThan(10_000);
  const out = join(work, 'report.html');
  const made = await cai(['report', run.last.runId, '--dir', state, '--out', out]);
  expect(made.stderr).toBe('');
  expect(made.status).toBe(0);
  expect(made.stdout).toBe(`report ${out}\n`);

  const html = readFileSync(out, 'utf8');
  expect(html).toContain(`CAI run ${run.last.runId}`);

  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const problems: string[] = [];
  page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
  const requests: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(`file://${out}`);

  for (const id of ['plot-joint', 'plot-residual', 'plot-predicted', 'plot-timeline', 'plot-cost']) {
    const svg = page.locator(`#${id} > svg`);
    await expect(svg.count()).resolves.toBe(1);
    const box = await svg.boundingBox();
    expect(box!.width).toBeGreaterThan(200);
    expect(box!.height).toBeGreaterThan(100);
    // Marks drawn: the heatmap's cells, the bars, the timeline's segments.
    await expect(
      page.locator(`#${id} svg .mark-rect path, #${id} svg .mark-rect rect, #${id} svg .mark-area path`).count(),
    ).resolves.toBeGreaterThan(0);
  }
  // 8 ranks: one timeline bar each, split into phases; two cold starts marked.
  await expect(page.locator('#plot-timeline svg .mark-symbol path').count()).resolves.toBeGreaterThanOrEqual(1);
  await expect(page.locator('#accuracy table th', { hasText: 'NMAD' }).count()).resolves.toBe(1);
  mkdirSync(join(ROOT, '.cai', 'test-output'), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  expect(statSync(SCREENSHOT).size).toBeGreaterThan(50_000);
  expect(problems).toEqual([]);
  // Self-contained: the page itself is the only thing loaded.
  expect(requests).toEqual([`file://${out}`]);
});

test('cai report of an unknown run is a usage error', async () => {
  const result = await cai(['report', 'no-such-run', '--dir', state]);
  expect(result.status).toBe(2);
  expect(result.stderr).toBe('cai: no run no-such-run in table cai-runs\n');
});
