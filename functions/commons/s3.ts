import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';

/**
 * The S3 client every part of CAI uses. `CAI_S3_ENDPOINT` points it at the local stack's embedded
 * server, which needs path-style addressing and no request checksums; otherwise it is the plain
 * AWS client with the usual credential and region chain.
 */
export function createS3Client(env: NodeJS.ProcessEnv = process.env): S3Client {
  const config: S3ClientConfig = { region: env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1' };
  const endpoint = env.CAI_S3_ENDPOINT;
  if (endpoint) {
    Object.assign(config, {
      endpoint,
      forcePathStyle: true,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      credentials: {
        accessKeyId: env.AWS_ACCESS_KEY_ID ?? 'S3RVER',
        secretAccessKey: env.AWS_SECRET_ACCESS_KEY ?? 'S3RVER',
      },
    } satisfies S3ClientConfig);
  }
  return new S3Client(config);
}

let shared: S3Client | undefined;
/** One client per process (per Lambda container), made on first use. */
export function s3Client(): S3Client {
  shared ??= createS3Client();
  return shared;
}
