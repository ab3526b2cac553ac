import crypto from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { resolve, sep } from 'node:path';
import S3rver from 's3rver';
import S3Error from 's3rver/lib/models/error';

// s3rver encrypts ListObjectsV2 continuation tokens with single DES, which OpenSSL 3 keeps in its
// legacy provider only: every list past the first 1,000 keys failed with InternalError. The token
// only has to round-trip inside this server, so DES becomes 3DES (same 8-byte block and IV) with
// the key repeated; nothing else asks for DES.
const { createCipheriv, createDecipheriv } = crypto;
const tripled = (key: crypto.CipherKey) => Buffer.concat([key, key, key] as Buffer[]);
crypto.createCipheriv = ((algorithm: string, key: crypto.CipherKey, iv: crypto.BinaryLike | null, options?: never) =>
  algorithm === 'des'
    ? createCipheriv('des-ede3-cbc', tripled(key), iv)
    : createCipheriv(algorithm, key, iv, options)) as typeof crypto.createCipheriv;
crypto.createDecipheriv = ((algorithm: string, key: crypto.CipherKey, iv: crypto.BinaryLike | null, options?: never) =>
  algorithm === 'des'
    ? createDecipheriv('des-ede3-cbc', tripled(key), iv)
    : createDecipheriv(algorithm, key, iv, options)) as typeof crypto.createDecipheriv;

/** An error the local S3 answers instead of serving a request, as S3 does under load, or a slow answer. */
export interface S3Fault {
  /** 503 SlowDown (over the prefix's request rate) or 500 InternalError; unset: the request is served, late (delayMs). */
  code?: 'SlowDown' | 'InternalError';
  /** Wait this long before answering (with the error, or by serving the request). */
  delayMs?: number;
  /** Only requests of this method (GET, HEAD, PUT, …); any when unset. */
  method?: string;
  /** Only requests for keys this matches ("bucket/key"); any when unset. */
  key?: RegExp;
  /** How many matching requests fail; every one when unset. */
  times?: number;
}

export interface LocalS3 {
  /** What CAI_S3_ENDPOINT should say for clients of this server. */
  endpoint: string;
  server: S3rver;
  /** A test switch: the requests that match fail with these faults from now on (replacing earlier ones). */
  injectFaults(...faults: S3Fault[]): void;
  /** Requests answered with an injected fault so far. */
  faultsServed(): number;
  /** Every request served so far, in order, as S3 bills them: GET (and HEAD), PUT (and POST, COPY), LIST, other. */
  requests: { kind: 'get' | 'put' | 'list' | 'other'; bucket: string; key: string }[];
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
  confineToDirectory(server, resolve(directory));
  honourIfMatch(server);
  let faults: (S3Fault & { left: number })[] = [];
  let served = 0;
  const requests: LocalS3['requests'] = [];
  server.middleware.unshift(async (ctx, next) => {
    const [bucket = '', ...rest] = decodeURIComponent(ctx.path.slice(1)).split('/');
    const key = rest.join('/');
    const kind =
      ctx.method === 'GET' || ctx.method === 'HEAD'
        ? key
          ? 'get'
          : 'list'
        : ctx.method === 'PUT' || ctx.method === 'POST'
          ? 'put'
          : 'other';
    requests.push({ kind, bucket, key });
    return next();
  });
  // First in the chain, so a fault is answered before anything is read or stored.
  server.middleware.unshift(async (ctx, next) => {
    const key = decodeURIComponent(ctx.path.slice(1));
    const fault = faults.find((f) => f.left > 0 && (!f.method || f.method === ctx.method) && (!f.key || f.key.test(key)));
    if (!fault) return next();
    fault.left--;
    served++;
    if (fault.delayMs) {
      // A client gone meanwhile (its runtime killed) gets nothing: the wait ends with its connection.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, fault.delayMs);
        ctx.res.once('close', () => (clearTimeout(timer), resolve()));
      });
      if (ctx.req.socket.destroyed) return void (ctx.respond = false);
    }
    if (!fault.code) return next();
    throw new S3Error(
      fault.code,
      fault.code === 'SlowDown' ? 'Please reduce your request rate.' : 'We encountered an internal error. Please try again.',
    );
  });
  const { address, port: bound } = await server.run();
  return {
    endpoint: `http://${address}:${bound}`,
    server,
    injectFaults: (...given) => void (faults = given.map((f) => ({ ...f, left: f.times ?? Infinity }))),
    faultsServed: () => served,
    requests,
    close: () => server.close(),
  };
}

/**
 * s3rver maps a key to a path under its folder (bucket/a/b → <dir>/bucket/a/b._S3rver_object), so a
 * key of ../../x would be written outside it. S3 takes such a key as a name like any other; this
 * server cannot store it safely, so it refuses it (400 InvalidArgument) rather than escape.
 */
function confineToDirectory(server: S3rver, root: string): void {
  const store = server.store;
  const inside = (path: string, bucket: string) => {
    const folder = resolve(root, bucket);
    if (!folder.startsWith(root + sep) || !(resolve(path) === folder || resolve(path).startsWith(folder + sep))) {
      throw new S3Error('InvalidArgument', `the local S3 refuses a bucket or key that resolves outside its folder (${bucket})`);
    }
    return path;
  };
  const getBucketPath = store.getBucketPath.bind(store);
  const getResourcePath = store.getResourcePath.bind(store);
  store.getBucketPath = (bucket) => inside(getBucketPath(bucket), bucket);
  store.getResourcePath = (bucket, key, resource) => inside(getResourcePath(bucket, key, resource), bucket);
}

/**
 * GET and HEAD with If-Match, as S3 answers them: 412 PreconditionFailed when the object's ETag is
 * not the one asked for (s3rver ignores the header). The inference function fetches a run's model
 * with the ETag the initializer checked, so a model overwritten mid-run fails its ranks, never mixes.
 */
function honourIfMatch(server: S3rver): void {
  server.middleware.unshift(async (ctx, next) => {
    const wanted = ctx.get('If-Match');
    await next();
    if (!wanted || !['GET', 'HEAD'].includes(ctx.method) || ctx.status >= 300) return;
    const etag = ctx.response.get('ETag');
    if (wanted === '*' || wanted.split(',').some((tag) => tag.trim() === etag)) return;
    (ctx.body as { destroy?: () => void } | null)?.destroy?.();
    ctx.body = null;
    throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', { Condition: 'If-Match' });
  });
}
