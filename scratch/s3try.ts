import { startLocalS3 } from '../local/s3-server';
(async () => {
  const s3 = await startLocalS3('/tmp/s3try', ['survey']);
  console.log('up', s3.endpoint);
  process.env.CAI_S3_ENDPOINT = s3.endpoint;
  const { s3Client } = await import('../functions/commons/s3');
  const { PutObjectCommand, HeadObjectCommand, GetObjectCommand } = await import('@aws-sdk/client-s3');
  await s3Client().send(new PutObjectCommand({ Bucket: 'survey', Key: 'a.txt', Body: 'hello world' }));
  console.log('put');
  console.log((await s3Client().send(new HeadObjectCommand({ Bucket: 'survey', Key: 'a.txt' }))).ContentLength);
  const g = await s3Client().send(new GetObjectCommand({ Bucket: 'survey', Key: 'a.txt', Range: 'bytes=2-5' }));
  console.log(await g.Body!.transformToString());
  await s3.close();
})();
