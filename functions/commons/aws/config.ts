import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { CaiError } from '../errors';

/**
 * Configuration of the Lambdas, from their environment, read and checked once at cold start.
 * template.yaml sets these on AWS; the local stack sets them for its workers.
 */
export class ConfigError extends CaiError {}

/** A comma-separated list of bucket names, as the template passes a CommaDelimitedList. */
const bucketList = z
  .string()
  .default('')
  .transform((list) =>
    list
      .split(',')
      .map((b) => b.trim())
      .filter(Boolean),
  );

const Env = z.object({
  RUNS_TABLE: z.string().min(1).default('cai-runs'),
  STATE_MACHINE_ARN: z.string().min(1).optional(),
  /** The artifact carries model.onnx beside the handler; Lambda unpacks it into LAMBDA_TASK_ROOT (/var/task). */
  MODEL_PATH: z.string().min(1).optional(),
  LAMBDA_TASK_ROOT: z.string().min(1).optional(),
  /** Buckets the functions may write outputs to: the control bucket and the template's ResultBucketNames. */
  CONTROL_BUCKET: z.string().min(1).optional(),
  RESULT_BUCKETS: bucketList,
  /** Buckets a payload's `model` may come from, besides the control bucket: the template's ModelBucketNames. */
  MODEL_BUCKETS: bucketList,
  /** The inference function's ephemeral storage (/tmp), which holds a run's model: the template's InferenceEphemeralStorage. */
  INFERENCE_EPHEMERAL_MB: z.coerce.number().int().min(512).max(10240).default(512),
  /** The bucket the inference function may read partitions from: DataBucketName, or the control bucket. */
  DATA_BUCKET: z.string().min(1).optional(),
  INFERENCE_MEMORY_MB: z.coerce.number().int().min(128).max(10240).optional(),
  INFERENCE_TIMEOUT_S: z.coerce.number().int().min(1).max(900).optional(),
  MAX_CONCURRENCY: z.coerce.number().int().min(1).max(10000).default(100),
  /** The inference function's reserved concurrency (0: none; it then draws on the account's unreserved pool). */
  INFERENCE_RESERVED_CONCURRENCY: z.coerce.number().int().min(0).default(0),
  SUMMARIZER_MEMORY_MB: z.coerce.number().int().min(128).max(10240).optional(),
  ROW_RANGE_MB: z.coerce.number().int().min(1).max(10240).optional(),
  /** Inference workers (ONNX sessions of one thread); 0: one per vCPU share of the memory size. */
  INFERENCE_WORKERS: z.coerce.number().int().min(0).max(6).default(0),
  /** Where the inference function keeps a run's model (Lambda's /tmp, its ephemeral storage). */
  MODEL_DIRECTORY: z.string().min(1).default('/tmp/cai-models'),
  ARCHITECTURE: z.enum(['x86_64', 'arm64']).default('x86_64'),
  AWS_REGION: z.string().min(1).default('us-east-1'),
  AWS_LAMBDA_FUNCTION_MEMORY_SIZE: z.coerce.number().int().min(128).default(2048),
  LOG_LEVEL: z.string().default('INFO'),
});

export type Config = z.infer<typeof Env>;

export function readConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = Env.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new ConfigError(`bad function configuration: ${problems}`);
  }
  const config = parsed.data;
  if (!config.MODEL_PATH && config.LAMBDA_TASK_ROOT) config.MODEL_PATH = `${config.LAMBDA_TASK_ROOT}/model.onnx`;
  return config;
}

/**
 * The settings a function cannot run without, checked together at cold start: a missing one fails
 * INIT with one line naming every setting that is missing, rather than a check silently skipped.
 */
export function requireSettings<K extends keyof Config>(config: Config, ...keys: K[]): { [P in K]-?: NonNullable<Config[P]> } {
  const missing = keys.filter((key) => config[key] === undefined || config[key] === null);
  if (missing.length) {
    throw new ConfigError(`${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} not set (template.yaml sets them on AWS)`);
  }
  return Object.fromEntries(keys.map((key) => [key, config[key]])) as { [P in K]-?: NonNullable<Config[P]> };
}

/**
 * The inference artifact's model as the initializer's artifact describes it (inference-model.json,
 * written by scripts/build.mjs from the same model file): its size plans a rank's memory.
 */
export function readInferenceModel(taskRoot: string | undefined): { bytes: number } {
  const file = join(taskRoot ?? '.', 'inference-model.json');
  try {
    const { bytes } = JSON.parse(readFileSync(file, 'utf8')) as { bytes?: unknown };
    if (typeof bytes === 'number' && bytes > 0) return { bytes };
  } catch {
    // said below
  }
  throw new ConfigError(`${file} is missing or unreadable: scripts/build.mjs writes it into the initializer's artifact`);
}
