/**
 * `npm run bench:initializer`: the initializer artifact, under the Runtime Interface Emulator at the
 * template's memory size, starting a run over the largest folder it lists: MAX_LISTING_PAGES pages of
 * 1,000 partitions (BENCH_PARTITIONS, default 200,000), planned into BENCH_WORLD_SIZE ranks (default
 * 10,000, the most a payload may ask; 0: one rank per partition, which the summarizer's limit refuses
 * after the whole plan). S3's listing comes from a stand-in that writes ListObjectsV2's XML pages from
 * a counter (the embedded S3 walks its folder for each page: hours at this size), each page after
 * BENCH_LIST_PAGE_MS (default 0); DynamoDB is the embedded one; Step Functions and Lambda's
 * GetAccountSettings answer from stand-ins.
 *
 * Measured: the invocation's duration and peak memory (Lambda's REPORT line, VmHWM), and the CPU
 * seconds the runtime process spent on it, which Lambda gives at the memory size's share of a vCPU
 * (1,769 MB a vCPU): what the invocation would take on Lambda is that CPU time over the share, plus
 * S3's time for each page. Prints those, and last one JSON line.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { createDynamoClient } from '../functions/commons/aws/clients';
import { lambdaVcpus } from '../functions/commons/model/lambda-sizing';
import { MAX_LISTING_PAGES } from '../functions/commons/run/rank-plan';
import { RunStore } from '../functions/commons/run/run-store';
import { buildArtifacts } from '../local/artifacts';
import { ensureRunsTable, startLocalDynamo } from '../local/dynamo-server';
import { startLocalLambdaApi } from '../local/lambda-api';
import { LocalFunction, lambdaReportLine } from '../local/lambda-runtime';
import { ROOT } from '../local/paths';
import { CONTROL_BUCKET, DATA_BUCKET, localFunctionConfig } from '../local/stack';
import { say } from './harness';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const PARTITIONS = Number(process.env.BENCH_PARTITIONS ?? MAX_LISTING_PAGES * 1000);
const WORLD_SIZE = Number(process.env.BENCH_WORLD_SIZE ?? 10_000);
const PAGE_MS = Number(process.env.BENCH_LIST_PAGE_MS ?? 0);
const PARTITION_BYTES = 1_048_576; // 51 galaxies: 20 of them make a rank of seconds, well inside any plan
const PREFIX = 'sky/';
const STATE_MACHINE_ARN = 'arn:aws:states:us-east-1:000000000000:stateMachine:cai-bench';

/** ListObjectsV2 over PARTITIONS keys, in S3's (byte) order, 1,000 a page; payload.json; PUTs kept as their size. */
function s3StandIn(payload: string): { server: Server; pages: () => number; puts: Record<string, number> } {
  const keys = Array.from({ length: PARTITIONS }, (_, i) => `${PREFIX}${i + 1}.pt`).sort();
  const puts: Record<string, number> = {};
  let pages = 0;
  const page = (from: number) => {
    const slice = keys.slice(from, from + 1000);
    const next = from + 1000 < keys.length ? String(from + 1000) : undefined;
    const contents = slice
      .map(
        (key) =>
          `<Contents><Key>${key}</Key><LastModified>2026-11-27T00:00:00.000Z</LastModified><ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><Size>${PARTITION_BYTES}</Size><StorageClass>STANDARD</StorageClass></Contents>`,
      )
      .join('');
    return (
      `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>${DATA_BUCKET}</Name>` +
      `<Prefix>${PREFIX}</Prefix><Delimiter>/</Delimiter><MaxKeys>1000</MaxKeys><KeyCount>${slice.length}</KeyCount>` +
      `<IsTruncated>${next !== undefined}</IsTruncated>${next ? `<NextContinuationToken>${next}</NextContinuationToken>` : ''}${contents}</ListBucketResult>`
    );
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      if (req.method === 'GET' && url.searchParams.get('list-type') === '2') {
        pages++;
        if (PAGE_MS) await new Promise((r) => setTimeout(r, PAGE_MS));
        res.writeHead(200, { 'content-type': 'application/xml' });
        return res.end(page(Number(url.searchParams.get('continuation-token') ?? 0)));
      }
      if (req.method === 'GET' && url.pathname === `/${CONTROL_BUCKET}/runs/bench/payload.json`) {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), etag: '"1"' });
        return res.end(payload);
      }
      if (req.method === 'PUT') {
        puts[url.pathname] = Buffer.concat(chunks).length;
        res.writeHead(200, { etag: '"2"' });
        return res.end();
      }
      res.writeHead(404, { 'content-type': 'application/xml' });
      res.end('<Error><Code>NoSuchKey</Code><Message>not in the bench</Message></Error>');
    });
  });
  return { server, pages: () => pages, puts };
}

/** StartExecution, answered at once. */
function sfnStandIn(): Server {
  return createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const { name } = JSON.parse(body || '{}') as { name?: string };
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' });
      res.end(
        JSON.stringify({
          executionArn: `${STATE_MACHINE_ARN.replace(':stateMachine:', ':execution:')}:${name}`,
          startDate: Date.now() / 1000,
        }),
      );
    });
  });
}

const listen = async (server: Server) => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
};

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'cai-bench-initializer-'));
  const payload = JSON.stringify({
    bucket: CONTROL_BUCKET,
    data_bucket: DATA_BUCKET,
    data_prefix: PREFIX.slice(0, -1),
    result_path: 'results/bench',
    ...(WORLD_SIZE ? { world_size: WORLD_SIZE } : {}),
  });
  const s3 = s3StandIn(payload);
  const sfn = sfnStandIn();
  const [s3Endpoint, sfnEndpoint] = [await listen(s3.server), await listen(sfn)];
  const lambdaApi = await startLocalLambdaApi();
  const dynamo = await startLocalDynamo(join(work, 'dynamodb'));
  const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
  await ensureRunsTable(new DynamoDBClient({ region: 'us-east-1', endpoint: dynamo.endpoint, credentials }), 'cai-runs');

  const artifacts = await buildArtifacts({ model: join(ROOT, 'model', 'default.onnx') });
  const config = localFunctionConfig('InitializerFunction', { resources: { RunsTable: 'cai-runs', CaiStateMachine: STATE_MACHINE_ARN } });
  const memoryMb = Number(process.env.BENCH_MEMORY_MB ?? config.memoryMb);
  const initializer = new LocalFunction({
    name: 'bench-initializer',
    artifact: artifacts.path('InitializerFunction'),
    handler: config.handler,
    memoryMb,
    // The measurement runs to its end: the template's timeout is what it is compared with.
    timeoutS: 900,
    architecture: config.architecture,
    env: {
      ...config.environment,
      CAI_S3_ENDPOINT: s3Endpoint,
      CAI_DYNAMODB_ENDPOINT: dynamo.endpoint,
      CAI_SFN_ENDPOINT: sfnEndpoint,
      CAI_LAMBDA_ENDPOINT: lambdaApi.endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      POWERTOOLS_LOG_LEVEL: 'WARN',
    },
    concurrency: 1,
    logFile: join(work, 'initializer.log'),
  });
  const event = (key: string) => ({
    Records: [{ eventName: 'ObjectCreated:Put', s3: { bucket: { name: CONTROL_BUCKET }, object: { key, sequencer: '01' } } }],
  });
  // A first invocation INITs the container (an event it skips), so the second is the run alone.
  await initializer.invoke(event('runs/bench/notes.txt'));
  const cpuBefore = initializer.cpuSeconds();
  say(`listing ${PARTITIONS.toLocaleString('en-US')} partitions (${Math.ceil(PARTITIONS / 1000)} pages) at ${memoryMb} MB …`);
  const reply = (await initializer.invoke(event('runs/bench/payload.json'))) as { runId: string; outcome: string; error?: string }[];
  const cpu = initializer.cpuSeconds() - cpuBefore;
  const report = initializer.billed[1];
  const record = await new RunStore(createDynamoClient({ ...process.env, CAI_DYNAMODB_ENDPOINT: dynamo.endpoint }), 'cai-runs').get(
    reply[0].runId,
  );
  await initializer.close();
  await Promise.all([dynamo.close(), lambdaApi.close(), artifacts.remove()]);
  s3.server.close();
  sfn.close();

  const share = Math.min(1, lambdaVcpus(memoryMb));
  const onLambdaS = cpu / share + (s3.pages() * PAGE_MS) / 1000;
  const manifestBytes = Object.entries(s3.puts).find(([path]) => path.endsWith('/manifest.json'))?.[1] ?? 0;
  process.stderr.write(`${lambdaReportLine(report)}\n`);
  say(
    `outcome ${JSON.stringify({ ...reply[0], error: reply[0].error?.slice(0, 200) })}; record ${record?.status}, ${record?.partitions ?? 0} partitions in ${record?.ranks ?? 0} ranks`,
  );
  say(
    `${s3.pages()} pages listed; manifest ${(manifestBytes / 2 ** 20).toFixed(1)} MiB; here ${(report.durationMs / 1000).toFixed(1)} s, ` +
      `${cpu.toFixed(1)} CPU s, peak ${Math.round(report.maxMemoryUsedMb ?? 0)} MB of ${memoryMb} MB; ` +
      `on Lambda at ${memoryMb} MB (${share.toFixed(3)} vCPU): ~${onLambdaS.toFixed(0)} s`,
  );
  process.stdout.write(
    `${JSON.stringify({
      partitions: PARTITIONS,
      world_size: WORLD_SIZE || PARTITIONS,
      pages: s3.pages(),
      list_page_ms: PAGE_MS,
      outcome: reply[0].outcome,
      memory_mb: memoryMb,
      duration_s: Number((report.durationMs / 1000).toFixed(2)),
      cpu_s: Number(cpu.toFixed(2)),
      peak_mb: Math.round(report.maxMemoryUsedMb ?? 0),
      manifest_mib: Number((manifestBytes / 2 ** 20).toFixed(2)),
      lambda_vcpus: Number(share.toFixed(3)),
      on_lambda_s: Number(onLambdaS.toFixed(1)),
    })}\n`,
  );
}

main().catch((error: Error) => {
  process.stderr.write(`bench: ${error.message}\n`);
  process.exit(1);
});
