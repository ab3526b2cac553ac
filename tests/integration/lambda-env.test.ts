import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LocalFunction, NO_AWS_ENDPOINT } from '../../local/lambda-runtime';
import { ROOT } from '../../local/paths';
import { tempFolder } from '../helpers/temp';

/**
 * A local container's AWS clients reach the local stack or nothing: whatever endpoint settings the
 * developer's shell holds (`eval "$(npx cai stack env)"` exports AWS_ENDPOINT_URL_S3 and others) or
 * a function's environment names, a client without a CAI_*_ENDPOINT of its own resolves to a closed
 * loopback port, never to AWS. The handler asks the SDK (this repository's) where each client of
 * the services CAI's functions use would send a request, and stops every request before it is sent.
 */
const work = tempFolder('cai-lambda-env-');
const probe = join(work, 'probe');
mkdirSync(probe);
writeFileSync(
  join(probe, 'index.mjs'),
  `import { createRequire } from 'node:module';
const sdk = createRequire(${JSON.stringify(join(ROOT, 'package.json'))});
const clients = {
  s3: ['@aws-sdk/client-s3', 'S3Client', 'ListBucketsCommand'],
  dynamodb: ['@aws-sdk/client-dynamodb', 'DynamoDBClient', 'ListTablesCommand'],
  sfn: ['@aws-sdk/client-sfn', 'SFNClient', 'ListStateMachinesCommand'],
  lambda: ['@aws-sdk/client-lambda', 'LambdaClient', 'GetAccountSettingsCommand'],
};
export const handler = async () => {
  const endpoints = {};
  for (const [service, [pkg, Client, Command]] of Object.entries(clients)) {
    const module = sdk(pkg);
    const client = new module[Client]({ region: 'us-east-1', credentials: { accessKeyId: 'none', secretAccessKey: 'none' } });
    // Where the request would go, read once it is built, before it is signed or sent.
    client.middlewareStack.add(
      () => async (args) => {
        const { protocol, hostname, port } = args.request;
        throw Object.assign(new Error('stopped'), { url: protocol + '//' + hostname + (port ? ':' + port : '') });
      },
      { step: 'build' },
    );
    endpoints[service] = await client.send(new module[Command]({})).catch((error) => error.url ?? error.message);
  }
  const settings = Object.fromEntries(Object.entries(process.env).filter(([name]) => /^AWS_ENDPOINT_URL|^AWS_IGNORE_CONFIGURED_ENDPOINT_URLS/.test(name)));
  return { endpoints, settings };
};
`,
);

test("a container's AWS clients without a local endpoint go to a closed loopback port, whatever endpoint settings the shell or the function's environment hold", async () => {
  const developer = {
    AWS_ENDPOINT_URL: 'https://aws.example.com',
    AWS_ENDPOINT_URL_S3: 'https://s3.example.com',
    AWS_ENDPOINT_URL_DYNAMODB: 'https://dynamodb.example.com',
  };
  const saved = Object.fromEntries(Object.keys(developer).map((name) => [name, process.env[name]]));
  Object.assign(process.env, developer);
  const fn = new LocalFunction({
    name: 'probe',
    artifact: probe,
    handler: 'index.handler',
    memoryMb: 256,
    timeoutS: 30,
    architecture: 'x86_64',
    // As a template or --env-vars could name them.
    env: { AWS_ENDPOINT_URL_SFN: 'https://states.us-east-1.amazonaws.com', AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: 'true' },
    concurrency: 1,
    logFile: join(work, 'probe.log'),
  });
  try {
    const { endpoints, settings } = (await fn.invoke({})) as { endpoints: Record<string, string>; settings: Record<string, string> };
    expect(endpoints).toEqual({ s3: NO_AWS_ENDPOINT, dynamodb: NO_AWS_ENDPOINT, sfn: NO_AWS_ENDPOINT, lambda: NO_AWS_ENDPOINT });
    expect(settings).toEqual({ AWS_ENDPOINT_URL: NO_AWS_ENDPOINT });
  } finally {
    await fn.close();
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
});
