import { mkdirSync } from 'node:fs';
import S3rver from 's3rver';

export interface LocalS3 {
  /** What CAI_S3_ENDPOINT should say for clients of this server. */
  endpoint: string;
  server: S3rver;
  close(): Promise<void>;
}

/**
 * The embedded S3 server of the local stack (s3rver), on a loopback port, keeping its objects
 * in `directory` so that they outlive the process. Port 0 picks a free one.
 */
export async function startLocalS3(directory: string, buckets: string[] = [], port = 0): Promise<LocalS3> {
  mkdirSync(directory, { recursive: true });
  const server = new S3rver({
    address: '127.0.0.1',
    port,
    silent: true,
    directory,
    configureBuckets: buckets.map((name) => ({ name })),
    vhostBuckets: false,
  });
  const { address, port: bound } = await server.run();
  return { endpoint: `http://${address}:${bound}`, server, close: () => server.close() };
}
