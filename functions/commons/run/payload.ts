import { z } from 'zod';
import { CaiError } from '../errors';
import type { Payload } from './contracts';

/**
 * payload.json: what a user uploads to start a run. The prototype's payload is accepted as it is;
 * its Python-only fields are ignored with a warning; anything else unknown, a wrong type or an
 * absurd value is an error naming the field.
 */

/** Limits that keep a typo from starting something absurd (or a bill). */
export const LIMITS = { batchSize: 16384, fileLimit: 100_000, worldSize: 10_000 } as const;

/** Fields of the prototype's payload that only its Python runner used. */
export const IGNORED_FIELDS = ['object_type', 'S3_object_name', 'script'] as const;

const bucketName = z
  .string({ error: 'must be an S3 bucket name' })
  .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name (3–63 lower-case letters, digits, dots, hyphens)');

const count = (max: number) =>
  z.union([z.number(), z.string()], { error: 'must be a whole number (or a string of digits)' }).transform((v, ctx) => {
    const n = typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > max) {
      ctx.addIssue({ code: 'custom', message: `must be a whole number from 1 to ${max} (got ${JSON.stringify(v)})` });
      return z.NEVER;
    }
    return n;
  });

const keyPrefix = (what: string) =>
  z
    .string({ error: `must be ${what}` })
    .refine((s) => !s.startsWith('/') && !s.split('/').includes('..'), `must be ${what} without a leading / or ..`);

const PayloadSchema = z.strictObject({
  bucket: bucketName,
  data_bucket: bucketName,
  data_prefix: keyPrefix('an S3 key prefix'),
  file_limit: count(LIMITS.fileLimit).optional(),
  batch_size: count(LIMITS.batchSize).optional(),
  result_path: keyPrefix('an S3 key prefix').pipe(z.string().min(1, 'must not be empty')),
  world_size: count(LIMITS.worldSize).optional(),
  object_type: z.unknown().optional(),
  S3_object_name: z.unknown().optional(),
  script: z.unknown().optional(),
});

export interface FieldError {
  field: string;
  message: string;
}

export class PayloadError extends CaiError {
  constructor(readonly errors: FieldError[]) {
    super(`payload.json: ${errors.map((e) => `${e.field}: ${e.message}`).join('; ')}`);
  }
}

export interface ParsedPayload {
  payload: Payload;
  warnings: string[];
}

export function parsePayload(raw: unknown): ParsedPayload {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new PayloadError([{ field: '(payload)', message: 'must be a JSON object' }]);
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
  const warnings = IGNORED_FIELDS.filter((f) => f in raw).map((f) => `payload field ${f} is the Python prototype's and is ignored by CAI`);
  return { payload, warnings };
}

/** The payload as JSON, from the bytes of an uploaded payload.json. */
export function parsePayloadJson(text: string): ParsedPayload {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new PayloadError([{ field: '(payload)', message: `is not valid JSON (${(error as Error).message})` }]);
  }
  return parsePayload(raw);
}
