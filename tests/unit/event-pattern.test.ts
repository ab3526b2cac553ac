import { checkEventPattern, EventPatternError, matchesEventPattern } from '../../local/event-pattern';
import { notificationMatches, type BucketNotification } from '../../local/template';

const pattern = checkEventPattern({
  source: ['aws.states'],
  detail: { status: ['FAILED', 'TIMED_OUT'], stateMachineArn: ['arn:sm'] },
});
const event = (status: string, extra: Record<string, unknown> = {}) => ({
  source: 'aws.states',
  detail: { status, stateMachineArn: 'arn:sm', ...extra },
});

test('a pattern matches when every field has one of its values, nested objects field by field', () => {
  expect(matchesEventPattern(pattern, event('FAILED'))).toBe(true);
  expect(matchesEventPattern(pattern, event('TIMED_OUT', { other: 1 }))).toBe(true);
  expect(matchesEventPattern(pattern, event('SUCCEEDED'))).toBe(false);
  expect(matchesEventPattern(pattern, { ...event('FAILED'), source: 'aws.s3' })).toBe(false);
  expect(matchesEventPattern(pattern, { source: 'aws.states', detail: { status: 'FAILED' } })).toBe(false);
  expect(matchesEventPattern(pattern, { source: 'aws.states' })).toBe(false);
  // An array in the event matches if any of its elements does.
  expect(matchesEventPattern(checkEventPattern({ resources: ['a'] }), { resources: ['b', 'a'] })).toBe(true);
  expect(matchesEventPattern(checkEventPattern({ resources: ['a'] }), { resources: ['b'] })).toBe(false);
});

test('content filters the local stack cannot match as EventBridge does are refused, naming the field', () => {
  expect(() => checkEventPattern({ detail: { status: [{ 'anything-but': 'SUCCEEDED' }] } })).toThrow(
    new EventPatternError('pattern.detail.status: the content filter {"anything-but":"SUCCEEDED"} is not matched locally'),
  );
  expect(() => checkEventPattern({ detail: 'FAILED' })).toThrow('pattern.detail: not an object');
});

test("a bucket notification fires for its event kinds and its key's prefix and suffix only", () => {
  const n: BucketNotification = {
    functionId: 'InitializerFunction',
    event: 'PayloadUploaded',
    bucket: 'b',
    events: ['s3:ObjectCreated:*'],
    prefix: '',
    suffix: 'payload.json',
  };
  expect(notificationMatches(n, 'ObjectCreated:Put', 'runs/a/payload.json')).toBe(true);
  expect(notificationMatches(n, 'ObjectCreated:CompleteMultipartUpload', 'payload.json')).toBe(true);
  expect(notificationMatches(n, 'ObjectRemoved:Delete', 'runs/a/payload.json')).toBe(false);
  expect(notificationMatches(n, 'ObjectCreated:Put', 'runs/a/payload.json.bak')).toBe(false);
  expect(notificationMatches({ ...n, events: ['s3:ObjectCreated:Put'], prefix: 'runs/' }, 'ObjectCreated:Copy', 'runs/payload.json')).toBe(
    false,
  );
  expect(notificationMatches({ ...n, prefix: 'runs/' }, 'ObjectCreated:Put', 'other/payload.json')).toBe(false);
});
