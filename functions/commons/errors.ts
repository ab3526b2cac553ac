/**
 * Typed errors shared by the Lambdas, the local stack and the CLI.
 * Each carries a message meant for a person; `cause` keeps the underlying error.
 */
export class CaiError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A file is not a readable tensor archive: not a zip, truncated, inconsistent, absurd sizes. */
export class ArchiveError extends CaiError {}

/** A pickle asked for something outside the allowlist; nothing was executed. */
export class UnsafePickleError extends CaiError {}

/** A tensor archive is well formed but holds something CAI does not decode (a dtype, a layout). */
export class UnsupportedTensorError extends CaiError {}

/** A partition decodes but does not hold the images/magnitudes/redshift layout. */
export class PartitionLayoutError extends CaiError {}

/**
 * The rank cannot go on, whatever partition it reads (its inference workers died): thrown out of the
 * rank, never recorded as one partition's failure, so that the state machine retries the rank.
 */
export class RankError extends CaiError {}

/** Bad arguments or options given by a person (CLI flags, sizes, locations). */
export class UsageError extends CaiError {}

/** The one line to show a person for any error: typed errors speak for themselves. */
export function describeError(error: unknown): string {
  if (error instanceof CaiError) return error.message;
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return `no such file: ${(error as NodeJS.ErrnoException).path ?? error.message}`;
    if (code === 'EISDIR')
      return `is a directory, not a file${(error as NodeJS.ErrnoException).path ? `: ${(error as NodeJS.ErrnoException).path}` : ''}`;
    if (code === 'ENOTDIR' || code === 'EEXIST')
      return `a file stands where a folder is needed: ${(error as NodeJS.ErrnoException).path ?? error.message}`;
    if (code === 'EACCES' || code === 'EPERM') return `permission denied: ${(error as NodeJS.ErrnoException).path ?? error.message}`;
    if (code === 'ENOSPC') return `no space left on the device writing ${(error as NodeJS.ErrnoException).path ?? ''}`.trim();
    // An AWS error reply without a body (a HEAD's) leaves the SDK only its HTTP status to name it by.
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (error.message === 'UnknownError' && status) return `HTTP ${status} (a reply with no error code)`;
    return `${error.name}: ${error.message}`;
  }
  return String(error);
}
