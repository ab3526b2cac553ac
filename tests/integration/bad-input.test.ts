/**
 * Bad input, as a new user would give it, through the real CLI: each gets its one line (exact where
 * the message is ours), the exit code the README promises, and nothing written where it should not be.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { BYTES_PER_GALAXY } from '../../functions/commons/partitions/galaxy';
import { join } from 'node:path';
import { cai } from '../helpers/cli';
import { ROOT } from '../../local/paths';
import { PAYLOAD_JSON_LIMIT_BYTES, parsePayloadJson, PayloadError } from '../../functions/commons/run/payload';
import { storable } from '../../functions/commons/run/run-store';
import { startLocalDynamo } from '../../local/dynamo-server';
import { writeTestPartition } from '../helpers/partitions';
import { tempFolder } from '../helpers/temp';

const work = tempFolder('cai-bad-');
const at = (...p: string[]) => join(work, ...p);

beforeAll(() => {
  writeTestPartition(at('clean.pt'), 40);
  // One pixel of galaxy 3 and one magnitude of galaxy 7 are NaN; galaxy 9's label is infinite.
  writeTestPartition(at('nan.pt'), 40, {
    edit: (t) => {
      t.images[3 * 5 * 32 * 32 + 100] = NaN;
      t.magnitudes[7 * 5 + 2] = NaN;
      t.redshift[9] = Infinity;
    },
  });
  writeTestPartition(at('f64.pt'), 40, { dtype: 'float64' });
});

describe('non-finite values', () => {
  test('cai predict: NaN for the objects with a non-finite input, accuracy over the finite rest with the count left out', async () => {
    const run = await cai(['predict', at('nan.pt'), '--out', at('nan.csv'), '--json']);
    expect(run.stderr).not.toMatch(/cai:|Error/);
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(
      /accuracy over 37 labelled objects \(3 more left out: non-finite prediction or label\):\n {2}MAE \d\.\d{4} /,
    );
    expect(run.stdout).toContain('2 objects with a non-finite input value (NaN or infinity): predicted NaN\n');
    const rows = readFileSync(at('nan.csv'), 'utf8').trim().split('\n').slice(1);
    expect(rows.filter((r) => r.split(',')[2] === 'NaN').map((r) => Number(r.split(',')[1]))).toEqual([3, 7]);
    expect(rows[9].split(',')[3]).toBe('Infinity');
    const { nonFinite, accuracy } = run.json<{ nonFinite: number; accuracy: { samples: number; excluded: number; mae: number } }>();
    expect([nonFinite, accuracy.samples, accuracy.excluded]).toEqual([2, 37, 3]);
    // The other objects' predictions are those of the clean partition: one bad value touches only its object.
    await cai(['predict', at('clean.pt'), '--out', at('clean.csv')]);
    const clean = readFileSync(at('clean.csv'), 'utf8').trim().split('\n').slice(1);
    rows.forEach((row, i) => {
      if (i !== 3 && i !== 7) expect(row.split(',')[2]).toBe(clean[i].split(',')[2]);
    });
  });
});

test('float64 tensors are widened to float32 and predict what the float32 partition predicts', async () => {
  const run = await cai(['predict', at('f64.pt'), '--out', at('f64.csv')]);
  expect(run.stderr).not.toMatch(/cai:|Error/);
  expect(run.status).toBe(0);
  await cai(['predict', at('clean.pt'), '--out', at('clean.csv')]);
  expect(readFileSync(at('f64.csv'), 'utf8').replace(/f64\.pt/g, 'clean.pt')).toBe(readFileSync(at('clean.csv'), 'utf8'));
});

const good = { bucket: 'cai-control', data_bucket: 'cai-data', data_prefix: 'v1', result_path: 'out/v1' };
const json = (o: unknown) => JSON.stringify(o);

/** payload.json text → the one line the run records (and npm start prints after "cai: <file>: "). */
const BAD_PAYLOADS: [string, string, string | RegExp][] = [
  // JSON.parse's own words differ between Node versions.
  ['not JSON', '{"bucket": ', /^\(payload\): is not valid JSON \(.+\)$/],
  ['empty', '', '(payload): is empty; expected a JSON object'],
  ['only spaces', '  \n', '(payload): is empty; expected a JSON object'],
  ['an array', json([good]), '(payload): must be a JSON object, not an array'],
  ['null', 'null', '(payload): must be a JSON object, not null'],
  ['a string', '"s3://survey/v1"', '(payload): must be a JSON object, not a string'],
  [
    'over 64 KiB, in an ignored field',
    json({ ...good, script: 'x'.repeat(1 << 20) }),
    '(payload): is 1048679 bytes; a payload.json is at most 65536 bytes',
  ],
  [
    'two adjacent dots in a bucket',
    json({ ...good, data_bucket: 'cai..control' }),
    'data_bucket: must be an S3 bucket name: no two adjacent dots (got "cai..control")',
  ],
  [
    'a bucket like an IP address',
    json({ ...good, bucket: '192.168.0.1' }),
    'bucket: must be an S3 bucket name, not an IP address (got "192.168.0.1")',
  ],
  [
    'a reserved bucket prefix',
    json({ ...good, bucket: 'xn--cai' }),
    'bucket: must be an S3 bucket name: xn-- begins names AWS reserves (got "xn--cai")',
  ],
  [
    'upper case',
    json({ ...good, data_bucket: 'Survey' }),
    'data_bucket: must be an S3 bucket name (3–63 lower-case letters, digits, dots, hyphens) (got "Survey")',
  ],
  ['a number as bucket', json({ ...good, data_bucket: 7 }), 'data_bucket: must be an S3 bucket name'],
  [
    'a prefix climbing out',
    json({ ...good, data_prefix: '../../../../escaped' }),
    'data_prefix: must be an S3 key prefix without a leading / or . and .. segments',
  ],
  [
    'a backslash climb',
    json({ ...good, data_prefix: 'v1\\..\\..\\x' }),
    'data_prefix: must be an S3 key prefix without a leading / or . and .. segments',
  ],
  [
    'a dot segment',
    json({ ...good, result_path: 'out/./v1' }),
    'result_path: must be an S3 key prefix without a leading / or . and .. segments',
  ],
  [
    'an absolute prefix',
    json({ ...good, data_prefix: '/data' }),
    'data_prefix: must be an S3 key prefix without a leading / or . and .. segments',
  ],
  ['a control character', json({ ...good, data_prefix: 'v1\n2' }), 'data_prefix: must be an S3 key prefix without control characters'],
  ['a 600-byte prefix', json({ ...good, data_prefix: 'p'.repeat(600) }), 'data_prefix: must be an S3 key prefix of at most 512 bytes'],
  ['an empty result_path', json({ ...good, result_path: '' }), 'result_path: must not be empty'],
  ['a fractional batch', json({ ...good, batch_size: 2.5 }), 'batch_size: must be a whole number from 1 to 16384 (got 2.5)'],
  ['a negative world_size string', json({ ...good, world_size: '-3' }), 'world_size: must be a whole number from 1 to 10000 (got "-3")'],
  ['a boolean file_limit', json({ ...good, file_limit: true }), 'file_limit: must be a whole number (or a string of digits)'],
  ['a missing field', json({ ...good, data_prefix: undefined }), 'data_prefix: is required'],
];

describe('payload.json: one line naming what is wrong', () => {
  test.each(BAD_PAYLOADS)('%s', (_, text, expected) => {
    let error: unknown;
    try {
      parsePayloadJson(text);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(PayloadError);
    const message = (error as Error).message.replace(/^payload\.json: /, '');
    if (typeof expected === 'string') expect(message).toBe(expected);
    else expect(message).toMatch(expected);
  });

  test('a byte-order mark, as Windows editors write, is not an error', () => {
    expect(parsePayloadJson(`\uFEFF${json(good)}`).payload).toEqual(good);
  });

  test('thousands of unknown fields make a bounded list of errors', () => {
    const many = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`f${i}`, 1]));
    const error = (() => {
      try {
        parsePayloadJson(json({ ...good, ...many }));
      } catch (e) {
        return e as PayloadError;
      }
    })()!;
    expect(error.errors).toHaveLength(21);
    expect(error.errors[20]).toEqual({ field: '(payload)', message: 'and 4980 more errors' });
  });
});

/** npm start as a user runs it, in a state folder of its own. */
function npmStart(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'dist', 'cli', 'cai.js'), 'start', '--dir', at('.cai'), ...args], { cwd: ROOT });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

describe('npm start checks the payload before it starts anything or uploads a byte', () => {
  beforeAll(() => {
    mkdirSync(at('parts'));
    writeTestPartition(at('parts', '1.pt'), 4);
  });
  test.each(
    BAD_PAYLOADS.filter(([name]) =>
      ['not JSON', 'an array', 'over 64 KiB, in an ignored field', 'two adjacent dots in a bucket', 'a prefix climbing out'].includes(name),
    ),
  )('%s', async (name, text, expected) => {
    const file = at(`${name.replace(/\W+/g, '-')}.json`);
    writeFileSync(file, text);
    const run = await npmStart(['--partitions', at('parts'), '--payload', file]);
    expect(run.status).toBe(2);
    expect(run.stderr.startsWith(`cai: ${file}: `) && run.stderr.endsWith('\n')).toBe(true);
    const message = run.stderr.slice(`cai: ${file}: `.length, -1);
    if (typeof expected === 'string') expect(message).toBe(expected);
    else expect(message).toMatch(expected);
    expect(run.stdout).toBe('');
  });
  test('data in a bucket the inference function may not read (not DataBucketName) is refused in one line', async () => {
    const file = at('elsewhere.json');
    writeFileSync(file, json({ ...good, data_bucket: 'survey' }));
    const run = await npmStart(['--partitions', at('parts'), '--payload', file]);
    expect([run.status, run.stderr]).toEqual([
      2,
      `cai: ${file}: data_bucket: the inference function may read only cai-data; set the template's DataBucketName (samconfig.toml parameter_overrides) to survey to read there\n`,
    ]);
  });
  test('missing or mistaken files and folders are named before anything starts', async () => {
    const payload = at('good.json');
    writeFileSync(payload, json(good));
    const cases: [string[], string][] = [
      [['--partitions', at('clean.pt'), '--payload', payload], `--partitions ${at('clean.pt')} is not a folder`],
      [['--partitions', at('nowhere'), '--payload', payload], `--partitions ${at('nowhere')}: no such folder`],
      [['--partitions', at('parts'), '--payload', at('none.json')], `--payload ${at('none.json')}: no such file`],
      [['--partitions', at('parts'), '--payload', at('parts')], `--payload ${at('parts')} is not a file`],
      [['--partitions', at('parts'), '--payload', payload, '--model', at('none.onnx')], `--model ${at('none.onnx')}: no such file`],
      [['--partitions', at('parts'), '--payload', payload, '--workers', '0'], '--workers "0" is not a positive integer'],
      [['--partitions', at('parts'), '--payload', payload, '--bogus'], "unknown option '--bogus' (cai --help)"],
    ];
    for (const [args, message] of cases) {
      const run = await npmStart(args);
      expect([run.status, run.stderr]).toEqual([2, `cai: ${message}\n`]);
    }
  });
  test("a reserved concurrency that leaves under 100 of the account's unreserved is refused, as Lambda refuses the deploy", async () => {
    const run = await npmStart(['--parameter-overrides', 'InferenceReservedConcurrency=901']);
    expect([run.status, run.stdout]).toEqual([2, '']);
    expect(run.stderr).toMatch(
      /^cai: InferenceReservedConcurrency 901 would leave 99 of the account's 1000 unreserved, .*below its minimum value of \[100\]\."\): reserve at most 900\n$/,
    );
  });
  afterAll(() => {
    // Nothing was started: no state folder, and nothing escaped the work folder.
    expect(() => readFileSync(at('.cai', 'stack.json'))).toThrow();
    expect(readdirSync(work)).not.toContain('escaped');
  });
});

test('no run record can reach DynamoDB 400 KB: failures, warnings and the error are bounded, summary.json keeps all', () => {
  const failures = Array.from({ length: 5000 }, (_, i) => ({ partition: `${'p'.repeat(1000)}/${i}.pt`, rank: i, error: 'e'.repeat(4000) }));
  const record = storable({ failures, warnings: Array.from({ length: 500 }, () => 'w'.repeat(4000)), error: 'x'.repeat(100_000) });
  const bytes = Buffer.byteLength(JSON.stringify({ ...record, payload: 'y'.repeat(PAYLOAD_JSON_LIMIT_BYTES) }));
  expect(bytes).toBeLessThan(400 * 1024);
  expect(record.failures!.length).toBeGreaterThan(50);
  const clipped = (letter: string, chars: number) => `${letter.repeat(1000)}… (${chars} characters in all; summary.json has it whole)`;
  expect(record.failures![0].error).toBe(clipped('e', 4000));
  expect(record.error).toBe(clipped('x', 100_000));
});

describe('two processes on one state folder', () => {
  test('cai runs and a second npm start say which process holds the folder, in one line', async () => {
    const state = at('busy', '.cai');
    const holder = await startLocalDynamo(join(state, 'dynamodb'));
    try {
      const holding = `${state} is in use by process ${process.pid} (`;
      const runs = await cai(['runs', '--dir', state]);
      expect(runs.status).toBe(2);
      expect(runs.stderr).toMatch(
        new RegExp(
          `^cai: ${escape(holding)}.+\\): wait for it to end, serve the folder to both with cai stack up, or give another --dir\\n$`,
        ),
      );
      const second = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [join(ROOT, 'dist', 'cli', 'cai.js'), 'start', '--dir', state], { cwd: ROOT });
        let stderr = '';
        child.stderr.on('data', (d) => (stderr += d));
        child.on('close', (status) => resolve({ status, stderr }));
      });
      expect(second.status).toBe(2);
      expect(second.stderr).toMatch(new RegExp(`^cai: ${escape(holding)}`));
      expect(second.stderr.trim().split('\n')).toHaveLength(1);
    } finally {
      await holder.close();
    }
    // Released: the folder opens again.
    expect((await cai(['runs', '--dir', state])).stderr).toBe(`cai: no runs table cai-runs under ${state}: npm start makes one\n`);
  });
});

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('cai: one line, exit 2 for usage and 1 for bad data, and nothing destroyed', () => {
  // [case, arguments, exit status, stderr (after "cai: ")]
  const cases: () => [string, string[], number, string | RegExp][] = () => [
    ['an unknown command', ['frobnicate'], 2, "unknown command 'frobnicate' (cai --help)"],
    ['a missing required option', ['predict', at('clean.pt')], 2, "required option '--out <file.csv>' not specified (cai --help)"],
    ['a missing option value', ['synth', '--out', at('s'), '--samples'], 2, "option '--samples <n>' argument missing (cai --help)"],
    ['an unknown option', ['runs', '--colour', 'red'], 2, "unknown option '--colour' (cai --help)"],
    ['a missing argument', ['runs', 'show'], 2, "missing required argument 'runId' (cai --help)"],
    [
      'predict --out onto its input',
      ['predict', at('clean.pt'), '--out', at('clean.pt')],
      2,
      `--out ${at('clean.pt')} is the input: it would be replaced`,
    ],
    [
      'predict --out onto the model',
      ['predict', at('clean.pt'), '--out', at('model.onnx'), '--model', at('model.onnx')],
      2,
      `--out ${at('model.onnx')} is the input: it would be replaced`,
    ],
    [
      'predict --out in a missing folder',
      ['predict', at('clean.pt'), '--out', at('no', 'such', 'x.csv')],
      2,
      `--out ${at('no', 'such', 'x.csv')}: folder ${at('no', 'such')} does not exist`,
    ],
    ['predict --out a folder', ['predict', at('clean.pt'), '--out', work], 2, `--out ${work} is a folder, not a file`],
    [
      'predict --out to S3',
      ['predict', at('clean.pt'), '--out', 's3://survey/x.csv'],
      2,
      '--out s3://survey/x.csv: writes a local file, not an S3 object',
    ],
    [
      'predict with a file that is not a model',
      ['predict', at('clean.pt'), '--out', at('x.csv'), '--model', at('clean.pt')],
      1,
      /^\S*clean\.pt: not an ONNX model: /,
    ],
    ['predict a missing partition', ['predict', at('none.pt'), '--out', at('x.csv')], 1, `no such file: ${at('none.pt')}`],
    [
      'synth a trillion galaxies',
      ['synth', '--samples', '1000000000000', '--out', at('flood')],
      2,
      '--samples 1000000000000 is more than the 50000000 galaxies synth writes (954.8 GiB)',
    ],
    [
      'predict with 5000 threads',
      ['predict', at('clean.pt'), '--out', at('x.csv'), '--threads', '5000'],
      2,
      /^--threads 5000 is more than \d+: this machine has \d+ cores$/,
    ],
    [
      'a local stack of 1000 containers',
      ['stack', 'up', '--dir', at('sw'), '--workers', '1000'],
      2,
      /^--workers 1000 is more than \d+: 4 inference containers per core of this machine's \d+$/,
    ],
    ['synth a zero', ['synth', '--samples', '0', '--out', at('flood')], 2, '--samples "0" is not a positive integer'],
    [
      'split into its own folder',
      ['split', at('parts', '1.pt'), '--size', '1MB', '--out', at('parts')],
      2,
      '--out is the folder of the input, whose 1.pt it would replace: write the partitions elsewhere',
    ],
    ['split with a size of nothing', ['split', at('clean.pt'), '--size', '0MB', '--out', at('sp')], 2, '--size "0MB" is out of range'],
  ];
  beforeAll(() => writeFileSync(at('model.onnx'), 'not a model'));
  test.each(cases())('%s', async (_, args, status, expected) => {
    const before = readFileSync(at('clean.pt'));
    const run = await cai(args);
    expect(run.status).toBe(status);
    const lines = run.stderr.split('\n').filter((l) => !/objects$/.test(l) && l !== '');
    expect(lines).toHaveLength(1);
    const message = lines[0].replace(/^cai: /, '');
    if (typeof expected === 'string') expect(message).toBe(expected);
    else expect(message).toMatch(expected);
    expect(readFileSync(at('clean.pt')).equals(before)).toBe(true);
    expect(readFileSync(at('model.onnx'), 'utf8')).toBe('not a model');
  });
  test('the flood wrote nothing', () => {
    expect(readdirSync(work)).not.toContain('flood');
  });
});

test('synth more than the file system holds is refused before a byte is written, whatever the disk: sized to the free space of /dev/shm', async () => {
  const shm = mkdtempSync('/dev/shm/cai-free-');
  try {
    const { bavail, bsize } = statfsSync(shm);
    const samples = Math.ceil((bavail * bsize) / BYTES_PER_GALAXY) + 1000;
    expect(samples).toBeLessThan(50_000_000); // under synth's own cap, so the free-space check is what refuses
    const run = await cai(['synth', '--samples', String(samples), '--out', join(shm, 'flood')]);
    expect(run.status).toBe(2);
    expect(run.stderr.trim()).toMatch(
      new RegExp(`^cai: --samples ${samples} would write [\\d.]+ GiB to .*flood, and its file system has [\\d.]+ [KMGT]?i?B free$`),
    );
    expect(readdirSync(shm)).toEqual([]);
    // The control: what fits is written.
    expect((await cai(['synth', '--samples', '20', '--out', join(shm, 'fits')])).status).toBe(0);
    expect(readdirSync(join(shm, 'fits'))).toContain('1.pt');
  } finally {
    rmSync(shm, { recursive: true, force: true });
  }
});
