import { failedEventsOf } from '../../toolkit/failed-events';

/** The two messages the stack's failed-events queue receives, as AWS documents them. */
test("Lambda's on-failure record of an S3 notification names each payload and the function's error", () => {
  // "Retaining records of asynchronous invocations": the invocation record sent to a destination.
  const record = {
    version: '1.0',
    timestamp: '2026-11-27T16:00:00.000Z',
    requestContext: {
      requestId: 'e4b4',
      functionArn: 'arn:aws:lambda:us-east-1:123456789012:function:init:$LATEST',
      condition: 'RetriesExhausted',
      approximateInvokeCount: 3,
    },
    requestPayload: { Records: [{ s3: { bucket: { name: 'cai-control-1' }, object: { key: 'runs/my+survey/payload.json' } } }] },
    responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
    responsePayload: { errorType: 'RangeError', errorMessage: 'Maximum call stack size exceeded' },
  };
  expect(failedEventsOf(record)).toEqual([
    {
      at: '2026-11-27T16:00:00.000Z',
      kind: 'payload',
      what: 's3://cai-control-1/runs/my survey/payload.json',
      error: 'RangeError: Maximum call stack size exceeded',
    },
  ]);
  // An event that grew too old in the queue has no reply: the condition says why.
  const aged = { ...record, requestContext: { ...record.requestContext, condition: 'EventAgeExceeded' }, responsePayload: undefined };
  expect(failedEventsOf(aged)[0].error).toBe('EventAgeExceeded (Unhandled)');
});

test("an EventBridge dead letter is the status change itself, the error in the message's attributes", () => {
  const event = {
    source: 'aws.states',
    'detail-type': 'Step Functions Execution Status Change',
    time: '2026-11-27T16:01:00Z',
    detail: { name: 'survey-1-abc', status: 'TIMED_OUT' },
  };
  expect(failedEventsOf(event, { ERROR_CODE: 'SDK_CLIENT_ERROR', ERROR_MESSAGE: 'Unable to invoke Lambda function' })).toEqual([
    {
      at: '2026-11-27T16:01:00Z',
      kind: 'execution',
      what: 'execution survey-1-abc TIMED_OUT',
      error: 'SDK_CLIENT_ERROR: Unable to invoke Lambda function',
    },
  ]);
});
