/**
 * One local "Lambda container": a process that loads a handler bundle once (its INIT) and then
 * serves invocations one at a time, as Lambda does. Driven by local/lambda-runtime.ts over IPC.
 */
import { pathToFileURL } from 'node:url';
import { peakRssMb } from '../functions/commons/memory';

type Handler = (event: unknown, context: unknown) => Promise<unknown>;
type Message = { type: 'invoke'; id: string; event: unknown };

const send = (message: unknown) => process.send!(message);
const bundle = process.env.CAI_HANDLER_BUNDLE!;

let handler: Handler;
import(pathToFileURL(bundle).href).then(
  (module: { handler: Handler }) => {
    handler = module.handler;
    send({ type: 'ready', initMs: process.uptime() * 1000 });
  },
  (error: Error) => {
    send({ type: 'init-error', error: { name: error.name, message: error.message } });
    process.exit(1);
  },
);

process.on('message', async (message: Message) => {
  if (message.type !== 'invoke') return;
  const started = performance.now();
  const context = { awsRequestId: message.id, functionName: process.env.AWS_LAMBDA_FUNCTION_NAME };
  try {
    const result = await handler(message.event, context);
    send({ type: 'result', id: message.id, result, durationMs: performance.now() - started, maxRssKb: Math.round(peakRssMb() * 1024) });
  } catch (caught) {
    const error = caught as Error;
    send({
      type: 'error',
      id: message.id,
      error: { name: error.name, message: error.message },
      durationMs: performance.now() - started,
      maxRssKb: Math.round(peakRssMb() * 1024),
    });
  }
});
