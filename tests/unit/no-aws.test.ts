import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { join } from 'node:path';
import { ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { ROOT } from '../../local/paths';
import { NOWHERE } from '../setup-env';

/**
 * No request of the suite can reach a real AWS account (tests/setup-env.ts, run before every test
 * file): the developer's AWS settings are gone, clients without an endpoint of their own go to a
 * closed loopback port, and a connection to any other machine fails before it is made.
 */
test("the developer's AWS settings are replaced by the suite's", () => {
  expect(process.env.AWS_PROFILE).toBeUndefined();
  expect(process.env.AWS_SESSION_TOKEN).toBeUndefined();
  expect(process.env.AWS_ACCESS_KEY_ID).toBe('S3RVER');
  expect(process.env.AWS_ENDPOINT_URL).toBe(NOWHERE);
  expect(process.env.AWS_CONFIG_FILE).toBe('/dev/null');
});

test('the setup clears whatever a developer has set: run under a real-looking profile, a file sees none of it', () => {
  // A child jest run of this check with a profile, keys and a region in its environment.
  const probe = join(ROOT, 'tests', 'unit', 'no-aws.test.ts');
  const run = spawnSync(process.execPath, [join(ROOT, 'node_modules', '.bin', 'jest'), probe, '-t', 'replaced by the suite'], {
    cwd: ROOT,
    encoding: 'utf8',
    env: {
      ...process.env,
      AWS_PROFILE: 'production',
      AWS_ACCESS_KEY_ID: 'AKIAREALLOOKING00000',
      AWS_SECRET_ACCESS_KEY: 'x',
      AWS_SESSION_TOKEN: 'token',
      AWS_ENDPOINT_URL: '',
    },
  });
  expect(run.stderr).toMatch(/1 passed/);
  expect(run.status).toBe(0);
});

test('an SDK client given no endpoint sends its request to the closed loopback port, not to AWS', async () => {
  const s3 = new S3Client({ maxAttempts: 1 });
  const sent: string[] = [];
  s3.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { hostname: string; port?: number };
      sent.push(`${request.hostname}:${request.port}`);
      return next(args);
    },
    { step: 'finalizeRequest' },
  );
  await expect(s3.send(new ListBucketsCommand({}))).rejects.toThrow(/ECONNREFUSED 127\.0\.0\.1:9/);
  expect(sent).toEqual(['127.0.0.1:9']);
});

test('a connection to another machine fails before it is made; loopback ones are allowed (the control)', async () => {
  expect(() => net.connect({ host: 's3.amazonaws.com', port: 443 })).toThrow(
    'cai tests: a connection to s3.amazonaws.com would leave this machine; the suite talks to local servers only',
  );
  expect(() => net.connect(443, '52.216.0.1')).toThrow(/52\.216\.0\.1 would leave this machine/);
  const server = net.createServer((socket) => socket.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const reply = await new Promise<string>((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('data', (d) => resolve(String(d)));
    socket.on('error', reject);
  });
  server.close();
  expect(reply).toBe('ok');
});
