import { readdirSync, readFileSync } from 'node:fs';
import { ReceiveMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { join } from 'node:path';

/**
 * Events the stack's asynchronous paths gave up on: an S3 notification the initializer never
 * handled (a payload never started), an execution status change the summarizer never recorded.
 * On AWS they wait in the stack's FailedEventsQueue: Lambda's on-failure destination sends its
 * invocation record there, and the EventBridge rule's dead-letter queue the event itself with the
 * error in message attributes. The local stack keeps the same invocation records as files.
 */
export interface FailedEvent {
  /** When it was given up on (ISO). */
  at: string;
  kind: 'payload' | 'execution' | 'event';
  /** s3://bucket/key of the payload, or the execution's name and status. */
  what: string;
  error: string;
}

/** The folder under a local stack's state where the on-failure destination's records go. */
export const FAILED_EVENTS_FOLDER = 'failed-events';

/** Lambda's record of an asynchronous invocation that failed (the on-failure destination's message). */
export interface InvocationRecord {
  version: '1.0';
  timestamp: string;
  requestContext: { requestId: string; functionArn: string; condition: string; approximateInvokeCount: number };
  requestPayload: unknown;
  responseContext: { statusCode: number; executedVersion: string; functionError?: string };
  responsePayload?: { errorType?: string; errorMessage?: string };
}

interface S3Records {
  Records?: { s3?: { bucket?: { name?: string }; object?: { key?: string } } }[];
}
interface StatusChange {
  source?: string;
  detail?: { name?: string; status?: string };
}

const decodeKey = (key: string) => {
  try {
    return decodeURIComponent(key.replace(/\+/g, ' '));
  } catch {
    return key;
  }
};

/** What an event was about: one entry per S3 record, or the execution it reported. */
function subjects(event: unknown): Pick<FailedEvent, 'kind' | 'what'>[] {
  const records = (event as S3Records)?.Records;
  if (Array.isArray(records) && records.length) {
    return records.map((r) => ({ kind: 'payload', what: `s3://${r.s3?.bucket?.name}/${decodeKey(r.s3?.object?.key ?? '')}` }));
  }
  const change = event as StatusChange;
  if (change?.source === 'aws.states' && change.detail)
    return [{ kind: 'execution', what: `execution ${change.detail.name} ${change.detail.status}` }];
  return [{ kind: 'event', what: JSON.stringify(event).slice(0, 200) }];
}

/** The failed events one queue message (or local record) stands for. */
export function failedEventsOf(body: unknown, attributes: Record<string, string> = {}): FailedEvent[] {
  const record = body as Partial<InvocationRecord>;
  if (record?.requestContext && 'requestPayload' in record) {
    const response = record.responsePayload;
    const error = response?.errorType
      ? `${response.errorType}: ${response.errorMessage ?? ''}`.trim()
      : `${record.requestContext.condition} (${record.responseContext?.functionError ?? `status ${record.responseContext?.statusCode}`})`;
    return subjects(record.requestPayload).map((s) => ({ ...s, at: record.timestamp ?? '', error }));
  }
  // An EventBridge dead letter: the event as it was, the reason beside it.
  const error = [attributes.ERROR_CODE, attributes.ERROR_MESSAGE].filter(Boolean).join(': ') || 'delivery failed';
  return subjects(body).map((s) => ({ ...s, at: (body as { time?: string })?.time ?? '', error }));
}

/** The local stack's failed events, oldest first. */
export function localFailedEvents(stateDirectory: string): FailedEvent[] {
  const folder = join(stateDirectory, FAILED_EVENTS_FOLDER);
  let files: string[];
  try {
    files = readdirSync(folder).filter((f) => f.endsWith('.json'));
  } catch {
    return [];
  }
  return files
    .sort()
    .flatMap((f) => failedEventsOf(JSON.parse(readFileSync(join(folder, f), 'utf8'))))
    .sort((a, b) => a.at.localeCompare(b.at));
}

/**
 * The failed events waiting in the stack's queue (its FailedEventsQueueUrl output), at most `max`.
 * Messages are looked at, not taken: each is received with a visibility timeout of 0, so it stays
 * in the queue for the next look and for whoever handles it.
 */
export async function queueFailedEvents(sqs: SQSClient, queueUrl: string, max = 100): Promise<FailedEvent[]> {
  const seen = new Map<string, FailedEvent[]>();
  for (let round = 0; round < 20 && seen.size < max; round++) {
    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 0, MessageAttributeNames: ['All'] }),
    );
    const fresh = Messages.filter((m) => m.MessageId && !seen.has(m.MessageId));
    if (fresh.length === 0) break;
    for (const message of fresh) {
      const attributes = Object.fromEntries(Object.entries(message.MessageAttributes ?? {}).map(([k, v]) => [k, v.StringValue ?? '']));
      let body: unknown = message.Body;
      try {
        body = JSON.parse(message.Body ?? '');
      } catch {
        // Not JSON: shown as it is.
      }
      seen.set(message.MessageId!, failedEventsOf(body, attributes));
    }
  }
  return [...seen.values()].flat().sort((a, b) => a.at.localeCompare(b.at));
}
