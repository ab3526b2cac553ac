import net from 'node:net';

/**
 * Every test file starts here, whatever it is run with: no request of the suite may reach a real
 * AWS account. The developer's own AWS settings are cleared, the suite's stand in (credentials that
 * sign nothing real, a region, and an endpoint on a closed loopback port for any client not pointed
 * at a local server), and this process may open connections to loopback addresses only. Child
 * processes (the CLI, the emulator, moto, Python) inherit the environment. tests/unit/no-aws.test.ts
 * holds all of it.
 */

/** Where a client without an endpoint of its own sends requests: a loopback port nothing listens on. */
export const NOWHERE = 'http://127.0.0.1:9';

const AMBIENT = /^AWS_|^AMAZON_|^ECS_CONTAINER_METADATA_URI/;
for (const name of Object.keys(process.env)) if (AMBIENT.test(name)) delete process.env[name];
Object.assign(process.env, {
  // The local stack's S3 (s3rver) takes its own keys only; they sign nothing on AWS.
  AWS_ACCESS_KEY_ID: 'S3RVER',
  AWS_SECRET_ACCESS_KEY: 'S3RVER',
  AWS_REGION: 'us-east-1',
  AWS_DEFAULT_REGION: 'us-east-1',
  // No profile, no instance or container credentials, no shared files: only the keys above.
  AWS_CONFIG_FILE: '/dev/null',
  AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_ENDPOINT_URL: NOWHERE,
  // The AWS SDK's Node 20 deprecation notice is noise in test output (the Lambdas run Node 22).
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
});

/** A connection this process may open: loopback, or a local socket path. */
export function isLocal(host: string | undefined): boolean {
  if (!host) return true; // Node's default host is localhost
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || h.startsWith('127.') || h === '0.0.0.0' || h === '::' || h.startsWith('::ffff:127.');
}

// Every TCP connection of this process goes through Socket#connect: one that would leave the machine fails here, before any packet.
const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function guarded(this: net.Socket, ...args: unknown[]) {
  // net.connect passes its normalised arguments as one array: [options, callback].
  const given = Array.isArray(args[0]) ? (args[0] as unknown[]) : args;
  const [first] = given;
  const options = (typeof first === 'object' && first !== null ? first : {}) as { host?: string; path?: string };
  const host = typeof first === 'number' ? (typeof given[1] === 'string' ? given[1] : undefined) : options.host;
  if (!options.path && typeof first !== 'string' && !isLocal(host)) {
    throw new Error(`cai tests: a connection to ${host} would leave this machine; the suite talks to local servers only`);
  }
  return (connect as (...a: unknown[]) => net.Socket).apply(this, args);
} as typeof net.Socket.prototype.connect;
