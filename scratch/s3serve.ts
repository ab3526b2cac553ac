import { startLocalS3 } from '../local/s3-server';
(async () => { const s3 = await startLocalS3('/tmp/s3serve', ['survey'], 45999); console.log('up', s3.endpoint); })();
