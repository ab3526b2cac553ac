import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../../local/paths';

/**
 * docs/performance.md's figures from `npm run bench` are those of the run it names, whose result is
 * committed as bench/results/inference.json: every number of its tables (and the run's own figures
 * in the text) equals the JSON's, rounded to the digits the page prints.
 */
const doc = readFileSync(join(ROOT, 'docs', 'performance.md'), 'utf8');
/* eslint-disable @typescript-eslint/no-explicit-any -- the bench's result is one ad-hoc JSON object (bench/inference.ts prints it so too). */
const bench: Record<string, any> = JSON.parse(readFileSync(join(ROOT, 'bench', 'results', 'inference.json'), 'utf8'));

/** The numbers a piece of the page shows, as written: "1,769" and "**0.251**" and "$0.117" are numbers; "int8" and "fp32" are not. */
const shown = (text: string): string[] => [...text.matchAll(/(?<![\w.])\d[\d,]*(?:\.\d+)?(?![\w])/g)].map((m) => m[0].replace(/,/g, ''));

/** What the page must show for a value of the JSON, printed as `as` is printed: rounded to its decimals. */
const printedAs = (value: number, as: string): number => {
  const decimals = as.split('.')[1]?.length ?? 0;
  return Number(value.toFixed(decimals));
};

/** The JSON's values against the numbers the page shows for them, in order; `allowMore` lets text after them (not from the run) follow. */
function expectShown(text: string, values: number[], allowMore = false) {
  const numbers = shown(text);
  if (!allowMore) expect(numbers).toHaveLength(values.length);
  expect(numbers.length).toBeGreaterThanOrEqual(values.length);
  expect(numbers.slice(0, values.length).map(Number)).toEqual(values.map((v, i) => printedAs(v, numbers[i])));
}

/** The body rows of the table whose header row starts with `header`, as cells. */
function table(header: string): string[][] {
  const lines = doc.split('\n');
  const start = lines.findIndex((l) => l.startsWith(header));
  expect(start).toBeGreaterThanOrEqual(0);
  const rows: string[][] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(
      line
        .slice(1, -1)
        .split(/(?<!\\)\|/)
        .map((c) => c.trim()),
    );
  }
  return rows;
}

const scaling = (precision: string, k: number) => bench.scaling.find((s: any) => s.precision === precision && s.k === k);

test("the results table: each figure is the run's", () => {
  const rows = new Map(table('| | target | measured |').map(([label, , measured]) => [label, { label, measured }]));
  const row = (prefix: string) => [...rows.values()].find((r) => r.label.startsWith(prefix))!;
  const expectRow = (prefix: string, label: number[], measured: number[], moreAfter = false) => {
    expect(row(prefix)).toBeDefined();
    expectShown(row(prefix).label, label);
    expectShown(row(prefix).measured, measured, moreAfter);
  };
  expectRow('PyTorch fp32, galaxies/s', [bench.threads, bench.batch_size], [bench.torch_fp32_samples_per_s]);
  expectRow('CAI fp32, galaxies/s', [], [bench.cai_fp32_samples_per_s]);
  // The ratios' notes quote another (fast) day's run, which this JSON does not hold.
  expectRow('`ratio_fp32`', [], [bench.ratio_fp32], true);
  expectRow('CAI int8, galaxies/s', [], [bench.cai_int8_samples_per_s]);
  expectRow('`ratio_int8`', [], [bench.ratio_int8], true);
  expectRow('int8 vs fp32', [], [bench.int8_median_abs_dz, bench.mae.cai_int8, bench.mae.cai_fp32]);
  expectRow('`peak_rss_mb_100mb_partition`', [], [bench.peak_rss_mb_100mb_partition]);
  expectRow('`cold_start_s`', [], [bench.cold_start_s]);
  expectRow('`e2e_efficiency`', [bench.e2e_samples, 2, bench.e2e_wall_s], [bench.e2e_efficiency]);
  expectRow('`gflops_fraction_of_peak`', [bench.achieved_gflops_fp32, bench.matmul_peak_gflops_per_core], [bench.gflops_fraction_of_peak]);
  expectRow(
    'k = 2 workers over k = 1',
    [2, 1],
    [
      scaling('fp32', 2).workers_speedup,
      scaling('int8', 2).workers_speedup,
      2,
      scaling('fp32', 2).threads_speedup,
      scaling('int8', 2).threads_speedup,
    ],
  );
  expect(rows.size).toBe(11);
});

test("the run's own figures in the text: its date and length, one galaxy's work, the partition, the INIT the cost model bills", () => {
  const text = doc.replace(/\s+/g, ' ');
  const run = /From one full run \(`npm run bench`, (\d{4}-\d\d-\d\d), ([\d,]+) s\)/.exec(text)!;
  expect(run).not.toBeNull();
  expect(bench.throughput.measured).toContain(run[1]);
  expectShown(run[2], [bench.bench_seconds]);
  expectShown(/a one-core matmul peak of ([\d.]+) GFLOP\/s/.exec(text)![1], [bench.matmul_peak_gflops_per_core]);
  expectShown(/\*\*([\d.]+) GFLOP\*\*/.exec(text)![1], [bench.gflop_per_sample]);
  expectShown(/A 100 MiB synthetic partition \(([\d,]+) galaxies\)/.exec(text)![1], [bench.partition_samples]);
  expectShown(/every container cold \(INIT ([\d.]+) s billed\)/.exec(text)![1], [bench.cold_start_s]);
  const walls = bench.cost_12_6gb.map((c: any) => c.int8_x86_64.wall_s);
  expectShown(/Wall time is about one rank's duration plus INIT \(all ranks at once\): ([\d.]+–[\d.]+) s for int8/.exec(text)![1], [
    Math.min(...walls),
    Math.max(...walls),
  ]);
});

test('the table of one session of k threads against k workers', () => {
  const rows = table('| model | k | session of k threads');
  expect(rows.map(([precision, k]) => `${precision} ${k}`)).toEqual(bench.scaling.map((s: any) => `${s.precision} ${s.k}`));
  for (const [precision, ...cells] of rows) {
    const s = scaling(precision, Number(cells[0]));
    expectShown(cells.join(' | '), [s.k, s.threads_per_s, s.threads_speedup, s.workers_per_s, s.workers_speedup, s.workers_efficiency]);
  }
});

test('the table of the inference artifact by workers', () => {
  const rows = table('| workers | INIT | peak RSS | rank |');
  expect(rows).toHaveLength(bench.artifact.length);
  rows.forEach((cells, i) => {
    const a = bench.artifact[i];
    expectShown(cells.join(' | '), [a.workers, a.init_ms, a.peak_rss_mb, a.rank_s]);
  });
});

test('the table of memory sizes', () => {
  const rows = table('| memory (MB) | vCPU | workers |');
  expect(rows).toHaveLength(bench.memory_sizes.length);
  rows.forEach((cells, i) => {
    const m = bench.memory_sizes[i];
    expectShown(cells.join(' | '), [
      m.memory_mb,
      m.vcpus,
      m.workers,
      m.fp32_samples_per_s,
      m.int8_samples_per_s,
      m.fp32_usd_per_million,
      m.int8_usd_per_million,
    ]);
  });
});

test("the table of the prototype's 12.6 GB on Lambda", () => {
  const header = doc.split('\n').find((l) => l.startsWith('| partition | ranks | prototype'))!;
  const memories = bench.cost_12_6gb.flatMap((c: any) =>
    [c.fp32_x86_64, c.fp32_arm64, c.int8_x86_64, c.int8_arm64].map((v) => v.memory_mb),
  );
  // The memory size each CAI column names is the one every row of the model was costed at.
  expectShown([...header.matchAll(/CAI \w+ \(([\d,]+) MB\)/g)].map((m) => m[1]).join(' '), [memories[0], memories[0]]);
  expect(new Set(memories)).toEqual(new Set([memories[0]]));
  const rows = table('| partition | ranks | prototype');
  expect(rows).toHaveLength(bench.cost_12_6gb.length);
  rows.forEach((cells, i) => {
    const c = bench.cost_12_6gb[i];
    expect(c.prototype.ranks).toBe(c.fp32_x86_64.ranks);
    expectShown(cells.join(' | '), [
      c.partition_mb,
      c.fp32_x86_64.ranks,
      c.prototype.duration_s,
      c.prototype.seed_formula_usd,
      c.prototype.billed_at_10gb_usd,
      c.fp32_x86_64.duration_s,
      c.fp32_x86_64.usd,
      c.fp32_arm64.usd,
      c.int8_x86_64.duration_s,
      c.int8_x86_64.usd,
      c.int8_arm64.usd,
    ]);
  });
});
