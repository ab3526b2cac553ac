declare module 's3rver' {
  import type { EventEmitter } from 'node:events';
  interface S3rverOptions {
    address?: string;
    port?: number;
    silent?: boolean;
    directory?: string;
    resetOnClose?: boolean;
    allowMismatchedSignatures?: boolean;
    vhostBuckets?: boolean;
    configureBuckets?: { name: string; configs?: (string | Buffer)[] }[];
  }
  /** The part of Koa's context the local stack's middleware uses. */
  interface S3rverContext {
    method: string;
    path: string;
    status: number;
    body: unknown;
    get(field: string): string;
    response: { get(field: string): string };
    req: import('node:http').IncomingMessage;
    res: import('node:http').ServerResponse;
    /** False: Koa leaves the response alone (nothing is sent). */
    respond?: boolean;
  }
  export default class S3rver extends EventEmitter {
    constructor(options?: S3rverOptions);
    /** The filesystem store behind the server (lib/stores/filesystem.js). */
    /** Koa's middleware list, composed when the server starts listening. */
    middleware: ((ctx: S3rverContext, next: () => Promise<void>) => Promise<void>)[];
    store: {
      getBucketPath(bucket: string): string;
      getResourcePath(bucket: string, key?: string, resource?: string): string;
    };
    run(): Promise<{ address: string; port: number }>;
    close(): Promise<void>;
  }
}

declare module 's3rver/lib/models/error' {
  export default class S3Error extends Error {
    constructor(code: string, message: string, detail?: Record<string, string>);
  }
}
