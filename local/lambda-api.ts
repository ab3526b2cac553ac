import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { UsageError } from '../functions/commons/errors';

/**
 * The one call of Lambda's API the functions make, served on loopback for the local stack:
 * GetAccountSettings (GET /2016-08-19/account-settings/), whose `AccountLimit` reports what the
 * account lets run at once. Anything else is refused as Lambda refuses an unknown route.
 */
export interface LocalLambdaApi {
  /** What CAI_LAMBDA_ENDPOINT should say for clients of this server. */
  endpoint: string;
  /** The account's unreserved concurrency it reports (tests lower it, as a new account's is). */
  concurrency: number;
  close(): Promise<void>;
}

/** A new account's quotas are lower; 1,000 is the default concurrency of an established one. */
export const LOCAL_ACCOUNT_CONCURRENCY = 1000;

/** Lambda keeps this much of an account's concurrency unreserved (https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html). */
export const MIN_UNRESERVED_CONCURRENCY = 100;

/**
 * A reserved concurrency as Lambda takes it (PutFunctionConcurrency, which a deploy runs): refused,
 * with Lambda's own reason, when it would leave the account fewer than 100 unreserved.
 */
export function checkReservedConcurrency(reserved: number | undefined, concurrency: number): void {
  if (reserved === undefined || concurrency - reserved >= MIN_UNRESERVED_CONCURRENCY) return;
  throw new UsageError(
    `InferenceReservedConcurrency ${reserved} would leave ${concurrency - reserved} of the account's ${concurrency} unreserved, and Lambda refuses it as a deploy would ` +
      `("Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [${MIN_UNRESERVED_CONCURRENCY}]."): ` +
      `reserve at most ${Math.max(0, concurrency - MIN_UNRESERVED_CONCURRENCY)}`,
  );
}

export async function startLocalLambdaApi(concurrency = LOCAL_ACCOUNT_CONCURRENCY): Promise<LocalLambdaApi> {
  // Filled in once the server listens; requests read its concurrency, which tests may change.
  const api = { concurrency } as LocalLambdaApi;
  const server: Server = createServer((request, response) => {
    const json = (status: number, body: unknown, type?: string) => {
      response.writeHead(status, { 'content-type': 'application/json', ...(type ? { 'x-amzn-errortype': type } : {}) });
      response.end(JSON.stringify(body));
    };
    if (request.method === 'GET' && /^\/2016-08-19\/account-settings\/?$/.test(request.url?.split('?')[0] ?? '')) {
      // Lambda keeps 100 of the account's concurrency unreserved; a reservation is the inference
      // function's own, which the initializer reads from its setting rather than from here.
      return json(200, {
        AccountLimit: {
          TotalCodeSize: 80530636800,
          CodeSizeUnzipped: 262144000,
          CodeSizeZipped: 52428800,
          ConcurrentExecutions: api.concurrency,
          UnreservedConcurrentExecutions: api.concurrency,
        },
        AccountUsage: { TotalCodeSize: 0, FunctionCount: 3 },
      });
    }
    json(
      404,
      { message: `the local stack serves only GetAccountSettings of Lambda's API (${request.method} ${request.url})` },
      'ResourceNotFoundException',
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(api, {
    endpoint: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}
