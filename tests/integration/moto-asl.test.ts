import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecutionInput, RankItem } from '../../functions/commons/run/contracts';
import { functionConfig } from '../../local/template';
import { ROOT } from '../../local/paths';
import { STATE_PAYLOAD_LIMIT_BYTES } from '../../functions/commons/aws/limits';

/**
 * statemachine/cai.asl.json, as `sam deploy` substitutes it, run by moto's Step Functions
 * interpreter: an ASL implementation independent of the local stack's, with canned Lambda replies.
 * At the seed's 10,240 ranks (the template's default MaxConcurrency) the execution succeeds and no state in its history grows with the
 * number of ranks, where AWS's limit is 256 KiB; the definition before ResultWriter, run the same
 * way, fails with States.DataLimitExceeded, which moto enforces as AWS does.
 */
const PYTHON = join(ROOT, '.venv-moto', 'bin', 'python');
const RANKS = 10_240;

interface MotoRun {
  status: string;
  error?: string;
  cause?: string;
  output?: string;
  seconds: number;
  stateSizes: [number, string, string][];
  scheduledTasks: { FunctionName: string; Payload: Record<string, unknown> }[];
  mapRun: { status?: string; itemCounts?: Record<string, number> };
}

function runInMoto(definition: string, ranks: number, rankReply: (rank: number) => object): MotoRun {
  if (!existsSync(PYTHON)) throw new Error('no .venv-moto: run `npm test`, whose pretest step creates it');
  const runId = 'seed-1tb-20261122';
  const items: RankItem[] = Array.from({ length: ranks }, (_, rank) => ({
    runId,
    rank,
    worldSize: ranks,
    dataBucket: 'cai-data',
    partitions: [{ key: `seed/partition_${rank}.pt`, bytes: 100 << 20 }],
    resultBucket: 'cai-control',
    resultPath: 'results',
  }));
  const input: ExecutionInput = {
    runId,
    manifest: { Bucket: 'cai-control', Key: `results/${runId}/manifest.json` },
    resultBucket: 'cai-control',
    resultPath: 'results',
    maxConcurrency: Number(functionConfig(ROOT, 'InitializerFunction').environment.MAX_CONCURRENCY), // the template's default
  };
  const spec = {
    definition,
    manifest: items,
    input,
    // moto's Lambda answers from one queue, in call order, whichever function is called; under load a
    // call it failed may have taken a reply. So every reply suits either function (rank, status and
    // runId), and spares follow: the order of calls cannot break a run.
    rankReplies: [...items.map((item) => rankReply(item.rank)), ...Array.from({ length: 100 }, () => rankReply(0))].map((reply) => ({
      runId,
      ...reply,
    })),
    summarizerReply: { runId, status: 'SUCCEEDED' },
  };
  const run = spawnSync(PYTHON, [join(ROOT, 'tests', 'python', 'moto_distributed_map.py')], {
    input: JSON.stringify(spec),
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (run.status !== 0) throw new Error(`moto run failed: ${run.stderr.slice(-2000)}`);
  return JSON.parse(run.stdout) as MotoRun;
}

// What `sam deploy` makes of the file: DefinitionSubstitutions applied (moto makes the two function ARNs).
const deployed = readFileSync(join(ROOT, 'statemachine', 'cai.asl.json'), 'utf8')
  .replaceAll('${ControlBucketName}', 'cai-control')
  .replaceAll('${Partition}', 'aws');

test(`moto runs the deployed definition over ${RANKS.toLocaleString('en')} ranks: SUCCEEDED, every state far under 256 KiB`, () => {
  const run = runInMoto(deployed, RANKS, (rank) => ({ rank, status: rank % 7 ? 'SUCCEEDED' : 'FAILED' }));
  process.stderr.write(`moto: ${RANKS} ranks in ${run.seconds} s; largest state ${run.stateSizes[0][0]} B (${run.stateSizes[0][1]})\n`);
  // On failure, what the Map's Catch passed to RecordFailure says why.
  expect([run.status, run.error, run.scheduledTasks.at(-1)?.Payload.failure ?? null]).toEqual(['SUCCEEDED', null, null]);
  expect(JSON.parse(run.output!)).toMatchObject({ runId: 'seed-1tb-20261122' });
  expect(run.mapRun.itemCounts).toMatchObject({ total: RANKS, succeeded: RANKS, failed: 0 });
  const [largest] = run.stateSizes;
  expect(largest[0]).toBeLessThan(2048); // constant-size: the Map's result is where the outcomes are
  expect(largest[0]).toBeLessThan(STATE_PAYLOAD_LIMIT_BYTES);
  // Summarize alone ran after the Map, with where the outcomes are, not the outcomes.
  expect(run.scheduledTasks).toHaveLength(1);
  const [summarize] = run.scheduledTasks;
  expect(summarize.FunctionName).toMatch(/:function:summarizer$/);
  expect(summarize.Payload).toMatchObject({
    runId: 'seed-1tb-20261122',
    mapRun: { ResultWriterDetails: { Bucket: 'cai-control', Key: expect.stringMatching(/^map-results\/[\w-]+\/manifest\.json$/) } },
  });
}, 900_000);

test('moto shows the definition before ResultWriter, each reply collected into the state, past 256 KiB', () => {
  const collecting = JSON.parse(deployed);
  const infer = collecting.States.Infer;
  delete infer.ResultWriter;
  delete infer.ItemProcessor.States.InferRank.ResultSelector; // each rank's reply whole, as the prototype kept it
  infer.ResultPath = '$.ranks';
  delete collecting.States.Summarize.Parameters.Payload['mapRun.$'];
  collecting.States.Summarize.Parameters.Payload['ranks.$'] = '$.ranks';
  // moto's grammar reads ToleratedFailurePercentage only in decimal form (AWS takes both); JSON.stringify drops the ".0".
  const text = JSON.stringify(collecting).replace('"ToleratedFailurePercentage":100,', '"ToleratedFailurePercentage":100.0,');
  const failure = { partition: 'seed/partition_0.pt', error: `truncated archive: ${'x'.repeat(300)}` };
  const run = runInMoto(text, 1000, (rank) => ({ rank, status: 'FAILED', failures: [failure] }));
  // As on AWS: States.DataLimitExceeded fails the execution past the Map's Catch, so RecordFailure never runs.
  expect([run.status, run.error]).toEqual(['FAILED', 'States.DataLimitExceeded']);
  expect(run.cause).toMatch(/'Infer' returned a result with a size exceeding/);
  expect(run.stateSizes.filter(([, type]) => type === 'TaskScheduled')).toEqual([]);
}, 900_000);
