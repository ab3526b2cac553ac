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
  export default class S3rver extends EventEmitter {
    constructor(options?: S3rverOptions);
    /** The filesystem store behind the server (lib/stores/filesystem.js). */
    /** Koa's middleware list, composed when the server starts listening. */
    middleware: ((ctx: { method: string; path: string }, next: () => Promise<void>) => Promise<void>)[];
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
