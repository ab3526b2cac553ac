// `node dist/local/serve-s3.js <dir> [bucket ...]`: the embedded S3 server on its own, in its own
// process. Prints {"endpoint": ...} once listening; runs until stopped.
import { startLocalS3 } from './s3-server';

const [directory = '.cai/s3', ...buckets] = process.argv.slice(2);
startLocalS3(directory, buckets).then(
  (s3) => {
    process.stdout.write(`${JSON.stringify({ endpoint: s3.endpoint })}\n`);
    const stop = () => s3.close().then(() => process.exit(0));
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  },
  (error: Error) => {
    process.stderr.write(`serve-s3: ${error.message}\n`);
    process.exit(1);
  },
);
