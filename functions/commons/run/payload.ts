import { z } from 'zod';
import { parseS3Uri } from '../aws/s3-uri';
import { CaiError } from '../errors';
import type { Payload, RetryPayload } from './contracts';
import { folderOf } from './rank-plan';

/**
 * payload.json: what a user uploads to start a run. The prototype's payload is accepted as it is;
 * its Python-only fields are ignored with a warning; anything else unknown, a wrong type or an
 * absurd value is an error naming the field.
 */

/** Limits that keep a typo from starting something absurd (or a bill). */
export const LIMITS = { batchSize: 16384, fileLimit: 100_000, worldSize: 10_000 } as const;

/** Fields of the prototype's payload that only its Python runner used. */
export const IGNORED_FIELDS = ['object_type', 'S3_object_name', 'script'] as const;

/** A payload.json is at most this many bytes (it names a dataset; it holds no data). Checked first. */
export const PAYLOAD_JSON_LIMIT_BYTES = 64 * 1024;
/** Field errors kept on a run: a payload of thousands of unknown keys is one error too many times. */
export const MAX_FIELD_ERRORS = 20;

/** Why `name` is not a general-purpose S3 bucket name (AWS's naming rules), or undefined. */
export function bucketNameProblem(name: string): string | undefined {
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(name)) return 'must be an S3 bucket name (3–63 lower-case letters, digits, dots, hyphens)';
  if (name.includes('..')) return 'must be an S3 bucket name: no two adjacent dots';
  if (/^\d+\.\d+\.\d+\.\d+$/.test(name)) return 'must be an S3 bucket name, not an IP address';
  const prefix = ['xn--', 'sthree-', 'amzn-s3-demo-'].find((p) => name.startsWith(p));
  if (prefix) return `must be an S3 bucket name: ${prefix} begins names AWS reserves`;
  const suffix = ['-s3alias', '--ol-s3', '.mrap', '--x-s3', '--table-s3'].find((s) => name.endsWith(s));
  if (suffix) return `must be an S3 bucket name: ${suffix} ends names AWS reserves`;
  return undefined;
}

const bucketName = z.string({ error: 'must be an S3 bucket name' }).superRefine((name, ctx) => {
  const problem = bucketNameProblem(name);
  if (problem) ctx.addIssue({ code: 'custom', message: `${problem} (got ${JSON.stringify(name.slice(0, 80))})` });
});

const count = (max: number) =>
  z.union([z.number(), z.string()], { error: 'must be a whole number (or a string of digits)' }).transform((v, ctx) => {
    const n = typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > max) {
      ctx.addIssue({ code: 'custom', message: `must be a whole number from 1 to ${max} (got ${JSON.stringify(v)})` });
      return z.NEVER;
    }
    return n;
  });

/** S3 keys are at most 1,024 bytes; a prefix leaves room for the names under it. */
const MAX_PREFIX_BYTES = 512;

// '.' and '..' segments are legal S3 keys, but every file system (the local S3's too) folds them:
// refused, so a key names one place everywhere and never climbs out of its folder (models/, data/).
const hasDotSegment = (key: string) => key.split(/[/\\]/).some((p) => p === '..' || p === '.');

const keyPrefix = (what: string) =>
  z
    .string({ error: `must be ${what}` })
    .refine((s) => !s.startsWith('/') && !hasDotSegment(s), `must be ${what} without a leading / or . and .. segments`)
    .refine((s) => Buffer.byteLength(s) <= MAX_PREFIX_BYTES, `must be ${what} of at most ${MAX_PREFIX_BYTES} bytes`)
    // eslint-disable-next-line no-control-regex
    .refine((s) => !/[\u0000-\u001f\u007f]/.test(s), `must be ${what} without control characters`);

const PayloadSchema = z.strictObject({
  bucket: bucketName,
  data_bucket: bucketName,
  data_prefix: keyPrefix('an S3 key prefix'),
  file_limit: count(LIMITS.fileLimit).optional(),
  batch_size: count(LIMITS.batchSize).optional(),
  result_path: keyPrefix('an S3 key prefix').pipe(z.string().min(1, 'must not be empty')),
  world_size: count(LIMITS.worldSize).optional(),
  model: z
    .string({ error: 'must be s3://bucket/key.onnx' })
    .refine((uri) => {
      try {
        return parseS3Uri(uri).key.toLowerCase().endsWith('.onnx');
      } catch {
        return false;
      }
    }, 'must be s3://bucket/key.onnx: an ONNX model in S3')
    .refine((uri) => {
      try {
        return !hasDotSegment(parseS3Uri(uri).key);
      } catch {
        return true; // said above
      }
    }, 'must be s3://bucket/key.onnx without . or .. segments in its key')
    .optional(),
  object_type: z.unknown().optional(),
  S3_object_name: z.unknown().optional(),
  script: z.unknown().optional(),
});

/** A run id as the initializer makes them (runIdFor): a Step Functions execution name. */
const RetrySchema = z.strictObject({
  retry_of: z
    .string({ error: 'must be the id of an earlier run (cai runs lists them)' })
    .regex(/^[A-Za-z0-9_-]{1,80}$/, 'must be the id of an earlier run (cai runs lists them)'),
});

export interface FieldError {
  field: string;
  message: string;
}

export class PayloadError extends CaiError {
  readonly errors: FieldError[];
  constructor(errors: FieldError[], options?: { cause?: unknown }) {
    const kept = errors.slice(0, MAX_FIELD_ERRORS).map((e) => ({ field: e.field.slice(0, 100), message: e.message.slice(0, 300) }));
    if (errors.length > kept.length) kept.push({ field: '(payload)', message: `and ${errors.length - kept.length} more errors` });
    super(`payload.json: ${kept.map((e) => `${e.field}: ${e.message}`).join('; ')}`, options);
    this.errors = kept;
  }
}

export interface ParsedPayload {
  payload: Payload;
  warnings: string[];
}

export function parsePayload(raw: unknown): ParsedPayload {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    const got = Array.isArray(raw) ? 'an array' : raw === null ? 'null' : `a ${typeof raw}`;
    throw new PayloadError([{ field: '(payload)', message: `must be a JSON object, not ${got}` }]);
  }
  const result = PayloadSchema.safeParse(raw);
  if (!result.success) {
    const errors = result.error.issues.flatMap((issue): FieldError[] => {
      if (issue.code === 'unrecognized_keys') {
        return issue.keys.map((key) => ({ field: key, message: 'is not a payload field' }));
      }
      const field = issue.path.join('.') || '(payload)';
      const missing = issue.path.length === 1 && (raw as Record<string, unknown>)[field] === undefined;
      return [{ field, message: missing ? 'is required' : issue.message }];
    });
    throw new PayloadError(errors);
  }
  // The prototype's Python-only fields are dropped from what CAI runs.
  const { object_type: _type, S3_object_name: _name, script: _script, ...payload } = result.data;
  const warnings = IGNORED_FIELDS.filter((f) => f in raw).map(
    (f) =>
      `payload field ${f} is the Python prototype's and is ignored by CAI${f === 'object_type' ? '' : ' (a run names its own ONNX model with `model`)'}`,
  );
  return { payload, warnings };
}

/**
 * The run a retry's payload names (`{"retry_of": "<runId>"}`), undefined for any other payload.
 * A retry takes everything else from the earlier run, so any other field is refused.
 */
export function parseRetryPayload(raw: unknown): string | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || !('retry_of' in raw)) return undefined;
  const result = RetrySchema.safeParse(raw);
  if (result.success) return (result.data satisfies RetryPayload).retry_of;
  throw new PayloadError(
    result.error.issues.flatMap((issue): FieldError[] =>
      issue.code === 'unrecognized_keys'
        ? issue.keys.map((key) => ({ field: key, message: "is not a field of a retry's payload (the earlier run's are used)" }))
        : [{ field: issue.path.join('.') || '(payload)', message: issue.message }],
    ),
  );
}

/**
 * Refuses a payload whose outputs would go to a bucket the functions may not write (the control
 * bucket and the template's ResultBucketNames): it would end in AccessDenied mid-run.
 */
export function checkResultBucket(payload: Payload, writable: string[]): void {
  if (writable.includes(payload.bucket)) return;
  throw new PayloadError([
    {
      field: 'bucket',
      message: `the functions may write only to ${writable.join(', ')}; add ${payload.bucket} to the template's ResultBucketNames (samconfig.toml parameter_overrides) to write there`,
    },
  ]);
}

/** Where partitions go in the control bucket: the only folder of it the inference function may read data from. */
export const CONTROL_DATA_FOLDER = 'data/';

/**
 * Refuses a payload whose partitions are where the inference function may not read them (the
 * template's DataBucketName, or the control bucket's data/ folder): every rank would fail with AccessDenied.
 */
export function checkDataBucket(payload: Payload, readable: string[], controlBucket?: string): void {
  if (!readable.includes(payload.data_bucket)) {
    throw new PayloadError([
      {
        field: 'data_bucket',
        message: `the inference function may read only ${readable.join(', ')}; set the template's DataBucketName (samconfig.toml parameter_overrides) to ${payload.data_bucket} to read there`,
      },
    ]);
  }
  if (payload.data_bucket === controlBucket && !folderOf(payload.data_prefix).startsWith(CONTROL_DATA_FOLDER)) {
    throw new PayloadError([
      {
        field: 'data_prefix',
        message: `in the control bucket, partitions go under ${CONTROL_DATA_FOLDER} (the inference function reads only there); got ${JSON.stringify(payload.data_prefix)}`,
      },
    ]);
  }
}

/** Refuses a payload over PAYLOAD_JSON_LIMIT_BYTES, before anything reads it. */
export function checkPayloadSize(bytes: number): void {
  if (bytes > PAYLOAD_JSON_LIMIT_BYTES) {
    throw new PayloadError([
      { field: '(payload)', message: `is ${bytes} bytes; a payload.json is at most ${PAYLOAD_JSON_LIMIT_BYTES} bytes` },
    ]);
  }
}

/**
 * The JSON value of a payload.json's text (a leading byte-order mark, as Windows editors write,
 * is dropped), or a PayloadError saying why there is none.
 */
export function payloadJson(text: string): unknown {
  checkPayloadSize(Buffer.byteLength(text));
  const body = text.replace(/^\uFEFF/, '');
  if (body.trim() === '') throw new PayloadError([{ field: '(payload)', message: 'is empty; expected a JSON object' }]);
  try {
    return JSON.parse(body);
  } catch (error) {
    throw new PayloadError([{ field: '(payload)', message: `is not valid JSON (${(error as Error).message})` }], { cause: error });
  }
}

/** The payload, from the text of an uploaded payload.json. */
export function parsePayloadJson(text: string): ParsedPayload {
  return parsePayload(payloadJson(text));
}
