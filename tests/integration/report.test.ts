import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createS3Client } from '../../functions/commons/aws/clients';
import { BANDS, IMAGE_ELEMENTS, IMAGE_SHAPE, IMAGE_SIDE } from '../../functions/commons/partitions/galaxy';
import { synthesizeInto } from '../../toolkit/datasets/synth';
import { TorchDatasetArchive } from '../../toolkit/datasets/torch-writer';
import { startLocalS3 } from '../../local/s3-server';
import { rgbComposite } from '../../cli/report/composite';
import { cai } from '../helpers/cli';
import { pythonScript, runPython } from '../helpers/python';
import { ROOT } from '../../local/paths';
import { tempFolder } from '../helpers/temp';

/**
 * Real local runs, their reports made by `cai report`, opened in Debian's chromium (installed by
 * scripts/browser-env.sh): every plot must have rendered, every thumbnail decoded, with no console
 * errors. First npm start's demo (2,000 labelled synthetic galaxies, the deployed regression
 * model); then a run's own model with a classification and a score output. The screenshots are
 * kept under .cai/test-output/.
 */
const work = tempFolder('cai-report-');
const state = join(work, '.cai');
const CHROMIUM = process.env.CAI_CHROMIUM ?? '/usr/bin/chromium';
const SCREENSHOT = join(ROOT, '.cai', 'test-output', 'report.png');
const TASKS_SCREENSHOT = join(ROOT, '.cai', 'test-output', 'report-tasks.png');

function start(args: string[] = []): Promise<{ status: number | null; last: { runId: string; report: string; outputs: string } }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'dist', 'cli', 'cai.js'), 'start', '--dir', state, '--workers', '2', ...args], {
      cwd: ROOT,
    });
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

/** A page of the report, collecting whatever goes wrong in it and every request it makes. */
async function openReport(file: string): Promise<{ page: Page; problems: string[]; requests: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const problems: string[] = [];
  page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
  const requests: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(`file://${file}`);
  return { page, problems, requests };
}

/** The plot is one SVG of a sensible size, with at least `least` marks of `marks` (selectors inside the SVG) drawn. */
async function expectPlot(page: Page, id: string, marks: string, least = 1): Promise<void> {
  const svg = page.locator(`#${id} > svg`);
  await expect(svg.count()).resolves.toBe(1);
  const box = await svg.boundingBox();
  expect(box!.width).toBeGreaterThan(200);
  expect(box!.height).toBeGreaterThan(100);
  const inside = marks
    .split(',')
    .map((m) => `#${id} svg ${m.trim()}`)
    .join(', ');
  await expect(page.locator(inside).count()).resolves.toBeGreaterThanOrEqual(least);
}

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

  const { page, problems, requests } = await openReport(out);
  for (const id of ['plot-joint', 'plot-residual', 'plot-predicted', 'plot-timeline', 'plot-cost']) {
    // Marks drawn: the heatmap's cells, the bars, the timeline's segments.
    await expectPlot(page, id, '.mark-rect path, .mark-rect rect, .mark-area path');
  }
  await expect(page.locator('#run').textContent()).resolves.toContain('the deployed one (astromae-redshift version 1)');
  // 8 ranks: one timeline bar each, split into phases; one cold start marked per container that started, as the ranks' results count them.
  const combined = JSON.parse(readFileSync(join(run.last.outputs, 'combined_data.json'), 'utf8')) as { cold_start: boolean }[];
  const cold = combined.filter((r) => r.cold_start).length;
  expect(cold).toBeGreaterThanOrEqual(1);
  await expect(page.locator('#plot-timeline svg .mark-symbol.role-mark path').count()).resolves.toBe(cold);
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

const CLASSES = ['low z', 'mid z', 'high z'];
const PARTITIONS = 3;
const PER_PARTITION = 400;
/** Every this many objects one has a bright trail drawn across it, and is labelled unusual. */
const TRAIL_EVERY = 60;

/** A partition of CAI's layout with two more label tensors: a class index (by redshift) and "has a trail". */
function writeTaskPartition(file: string, seed: number): Float32Array {
  const n = PER_PARTITION;
  const tensors = { images: new Float32Array(n * IMAGE_ELEMENTS), magnitudes: new Float32Array(n * BANDS), redshift: new Float32Array(n) };
  synthesizeInto(tensors, 0, n, seed);
  const kind = tensors.redshift.map((z) => (z < 0.08 ? 0 : z < 0.14 ? 1 : 2));
  const trail = new Float32Array(n);
  for (let k = 0; k < n; k += TRAIL_EVERY) {
    trail[k] = 1;
    for (let b = 0; b < BANDS; b++) {
      for (let x = 0; x < IMAGE_SIDE; x++) tensors.images[k * IMAGE_ELEMENTS + b * IMAGE_SIDE * IMAGE_SIDE + x * IMAGE_SIDE + x] += 300;
    }
  }
  const archive = new TorchDatasetArchive([
    { dtype: 'float32', shape: [n, ...IMAGE_SHAPE] },
    { dtype: 'float32', shape: [n, BANDS] },
    { dtype: 'float32', shape: [n] },
    { dtype: 'float32', shape: [n] },
  ]);
  [tensors.images, tensors.magnitudes, kind, trail].forEach((values, i) => (archive.tensor(i) as Float32Array).set(values));
  writeFileSync(file, archive.finish());
  return tensors.images;
}

/** What the page's code below touches of an <img> (this project's TypeScript has no DOM types). */
interface PageImage {
  complete: boolean;
  naturalWidth: number;
  naturalHeight: number;
  width: number;
  ownerDocument: {
    createElement(tag: 'canvas'): {
      width: number;
      height: number;
      getContext(kind: '2d'): {
        drawImage(image: PageImage, x: number, y: number): void;
        getImageData(...box: number[]): { data: ArrayLike<number> };
      };
    };
  };
}

/** Each img.thumb's natural size, and whether it decoded. */
const thumbnails = (page: Page, table: string) =>
  page.$$eval(`#${table} img.thumb`, (images) =>
    (images as unknown as PageImage[]).map((i) => ({
      complete: i.complete,
      width: i.naturalWidth,
      height: i.naturalHeight,
      shown: i.width,
    })),
  );

/** The first thumbnail's pixels as the browser decoded them, RGBA. */
const decodedPixels = (page: Page, table: string) =>
  page.$eval(`#${table} img.thumb`, (img) => {
    const image = img as unknown as PageImage;
    const canvas = image.ownerDocument.createElement('canvas');
    [canvas.width, canvas.height] = [image.naturalWidth, image.naturalHeight];
    const context = canvas.getContext('2d');
    context.drawImage(image, 0, 0);
    return Array.from(context.getImageData(0, 0, canvas.width, canvas.height).data);
  });

test('a run model with a classification and a score output: confusion matrix, reliability, scores, and the top objects as images', async () => {
  const data = join(work, 'tasks');
  mkdirSync(data);
  const images = new Map<string, Float32Array>();
  for (let p = 0; p < PARTITIONS; p++) images.set(`part-${p}.pt`, writeTaskPartition(join(data, `part-${p}.pt`), 31 + p));
  // Classes by r magnitude (fainter, farther): logits −2r + 2·t1, 0, 2r − 2·t2 change places at r = t1 and r = t2.
  const [t1, t2] = [16.6, 18.5];
  const W = [0, 1, 2, 3, 4].map((b) => (b === 2 ? [-2, 0, 2] : [0, 0, 0]));
  const model = join(work, 'tasks.onnx');
  runPython(pythonScript('make_task_model.py'), [model, JSON.stringify({ W, b: [2 * t1, 0, -2 * t2] })]);
  writeFileSync(
    join(work, 'tasks.card.json'),
    JSON.stringify({
      name: 'report-test-tasks',
      version: '1',
      inputs: { image: { tensor: 0, dtype: 'float32' }, magnitude: { tensor: 1, dtype: 'float32' } },
      outputs: {
        kind: { task: 'classification', classes: CLASSES, scores: 'logits', label: 2 },
        oddity: { task: 'score', label: 3 },
      },
    }),
  );
  const modelUri = 's3://cai-control/models/tasks.onnx';
  const payload = join(work, 'tasks.json');
  writeFileSync(
    payload,
    JSON.stringify({ bucket: 'cai-control', data_bucket: 'cai-data', data_prefix: 'tasks', result_path: 'results/tasks', model: modelUri }),
  );

  const run = await start(['--partitions', data, '--payload', payload, '--run-model', model]);
  expect(run.status).toBe(0);
  // npm start's own copy reads the images through the stack it ran on.
  expect(readFileSync(run.last.report, 'utf8').match(/<img class="thumb" src="data:image\/png;base64,/g)).toHaveLength(50);

  const out = join(work, 'tasks.html');
  const made = await cai(['report', run.last.runId, '--dir', state, '--out', out]);
  expect(made.stderr).toBe('');
  expect(made.status).toBe(0);

  const { page, problems, requests } = await openReport(out);
  await expect(page.locator('#run').textContent()).resolves.toMatch(
    new RegExp(`report-test-tasks version 1.*${modelUri.replace(/\./g, '\\.')} \\(ETag [0-9a-f]+\\)`),
  );
  // Classification: 3 × 3 cells and their counts, the reliability curve over the diagonal, a row per class.
  await expectPlot(page, 'plot-confusion-kind', '.mark-rect path', 9);
  await expect(page.locator('#plot-confusion-kind svg .mark-text.role-mark text').count()).resolves.toBe(9);
  await expectPlot(page, 'plot-reliability-kind', '.mark-line path', 2);
  await expectPlot(page, 'plot-reliability-kind', '.mark-symbol path', 2);
  await expect(page.locator('#classes-kind tbody tr').allTextContents()).resolves.toEqual(
    CLASSES.map((c) => expect.stringMatching(new RegExp(`^${c}(\\d\\.\\d{4}){3}[\\d,]+[\\d,]+$`))),
  );
  await expect(page.locator('#classification-kind table th', { hasText: 'log-loss' }).count()).resolves.toBe(1);
  // Score: the histogram's bars, and the top 50, each with its image, the trails first.
  await expectPlot(page, 'plot-score-oddity', '.mark-rect path', 5);
  const rows = page.locator('#top-oddity tbody tr');
  await expect(rows.count()).resolves.toBe(50);
  const thumbs = await thumbnails(page, 'top-oddity');
  expect(thumbs).toHaveLength(50);
  for (const t of thumbs) expect(t).toEqual({ complete: true, width: IMAGE_SIDE, height: IMAGE_SIDE, shown: 64 });

  // The browser's decoder reads back exactly the composite of the object's i, r, g bands.
  const [partition, row] = (await rows.first().locator('td').allTextContents()).slice(2, 4);
  const expected = rgbComposite(
    images.get(basename(partition))!.subarray(Number(row) * IMAGE_ELEMENTS, (Number(row) + 1) * IMAGE_ELEMENTS),
    BANDS,
    IMAGE_SIDE,
    IMAGE_SIDE,
  ).rgb;
  const decoded = await decodedPixels(page, 'top-oddity');
  expect(decoded.filter((_, k) => k % 4 !== 3)).toEqual(Array.from(expected));
  expect(Number(row) % TRAIL_EVERY).toBe(0);

  mkdirSync(join(ROOT, '.cai', 'test-output'), { recursive: true });
  await page.screenshot({ path: TASKS_SCREENSHOT, fullPage: true });
  expect(problems).toEqual([]);
  expect(requests).toEqual([`file://${out}`]);

  // A partition gone: the table is still made, its objects without images, and one line says why.
  const gone = `tasks/${basename(partition)}`;
  const s3 = await startLocalS3(join(state, 's3'));
  try {
    await createS3Client({ ...process.env, AWS_REGION: 'us-east-1', CAI_S3_ENDPOINT: s3.endpoint }).send(
      new DeleteObjectCommand({ Bucket: 'cai-data', Key: gone }),
    );
  } finally {
    await s3.close();
  }
  const without = join(work, 'tasks-without.html');
  const again = await cai(['report', run.last.runId, '--dir', state, '--out', without]);
  expect(again.status).toBe(0);
  const second = await openReport(without);
  await expect(second.page.locator('#top-oddity tbody tr').count()).resolves.toBe(50);
  const left = await thumbnails(second.page, 'top-oddity');
  const inGone = await second.page.locator('#top-oddity tbody tr', { hasText: gone }).count();
  expect(inGone).toBeGreaterThan(0);
  expect(left).toHaveLength(50 - inGone);
  for (const t of left) expect(t.width).toBe(IMAGE_SIDE);
  await expect(second.page.locator('#score-oddity p', { hasText: 'could not be read' }).textContent()).resolves.toMatch(
    new RegExp(`^No images for the objects of 1 of 3 partitions, which could not be read \\(no such object: s3://cai-data/${gone}\\)\\.$`),
  );
  expect(second.problems).toEqual([]);
});
