import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { RUNS_INDEXES } from '../../functions/commons/run/run-store';
import { readTemplate, samConfigOverrides } from '../../local/template';
import { allows, type Statement } from '../helpers/iam';
import { ROOT } from '../../local/paths';
import { pythonScript, runPython } from '../helpers/python';
import { tempFolder } from '../helpers/temp';

/**
 * `sam deploy`, as a new user runs it after `sam build` (npm test's sam-check builds), into moto's
 * CloudFormation: tests/python/moto_deploy.py gives moto what its CloudFormation lacks (SAM's
 * transform, the dependency-cycle check, state machine substitutions, bucket notifications, IAM's
 * policy check) and probes the created stack's wiring. The same deploy refuses the template as it
 * was before the cycle was broken.
 */
const PYTHON = join(ROOT, '.venv-moto', 'bin', 'python');
const SAM = join(ROOT, '.venv-sam', 'bin', 'sam');
const BUILT = join(ROOT, '.aws-sam', 'build', 'template.yaml');
/** CloudFormation's longest stack name (128 characters), upper case included: valid for a stack, never for a bucket. */
const LONG_STACK = `CAI-Survey-${'Deep'.repeat(29)}`.slice(0, 128);
const ALARM_EMAIL = 'survey-ops@example.org';

interface DeployedFunction {
  arn: string;
  memory: number;
  timeout: number;
  runtime: string;
  architectures: string[];
  environment: Record<string, string>;
  role: string;
  policy: { Statement: { Principal: { Service: string }; Action: string; Condition?: unknown }[] } | null;
  asyncConfig: { MaximumRetryAttempts: number; MaximumEventAgeInSeconds: number; DestinationConfig: unknown } | null;
  /** GetFunctionConcurrency's ReservedConcurrentExecutions; null when none is reserved. */
  reservedConcurrency: number | null;
}
interface DeployedStack {
  status: string;
  outputs: Record<string, string>;
  resources: Record<string, { type: string; id: string }>;
  functions: Record<string, DeployedFunction>;
  roles: Record<string, { arn: string; statements: Statement[]; managed: string[] }>;
  bucket: { name: string; notification: { LambdaFunctionConfigurations?: unknown[] }; lifecycle: unknown[] | null };
  stateMachine: { arn: string; name: string; roleArn: string; definition: string };
  table: {
    name: string;
    keys: unknown[];
    indexes: { name: string; keys: unknown[]; projection: unknown }[];
    billing: string;
    deletionProtection: boolean;
  };
  rules: Record<string, { pattern: unknown; targets: string[]; deadLetters: (string | null)[]; retryPolicies: unknown[] }>;
  logGroups: Record<string, number | null>;
  queues: Record<string, { url: string; arn: string; retentionSeconds: number }>;
  alarms: Record<string, DeployedAlarm>;
  /** Each dashboard's body, by name. */
  dashboards: Record<string, string>;
  /** Each topic's subscriptions, by the topic's logical id. */
  topics: Record<string, { protocol: string; endpoint: string }[]>;
}
interface DeployedAlarm {
  AlarmArn: string;
  AlarmDescription: string;
  Namespace: string;
  MetricName: string;
  Dimensions: { Name: string; Value: string }[];
  Statistic: string;
  Period: number;
  EvaluationPeriods: number;
  DatapointsToAlarm: number | null;
  Threshold: number;
  ComparisonOperator: string;
  TreatMissingData: string;
  AlarmActions: string[];
}
interface Deployment {
  name: string;
  exit: number;
  output: string;
  seconds: number;
  stack?: DeployedStack;
  probes?: Record<string, string[]>;
  deleted?: {
    exit: number;
    output: string;
    stackStatus: string | null;
    bucketObjects: number | null;
    /** Records left in the runs table (null: the table is gone), and DeleteTable's refusal of it then. */
    tableRecords: number | null;
    deleteTableRefused: string | null;
  };
}

type Resources = Record<string, { Properties: Record<string, unknown> & { DefinitionSubstitutions: Record<string, unknown> } }>;

/** A variant of the built template in another folder: its code and definition paths made absolute. */
function variant(folder: string, name: string, change: (resources: Resources) => void): string {
  const template = parse(readFileSync(BUILT, 'utf8')) as { Resources: Resources };
  for (const resource of Object.values(template.Resources) as { Properties?: Record<string, string> }[]) {
    const p = resource.Properties ?? {};
    if (p.CodeUri) p.CodeUri = join(ROOT, '.aws-sam', 'build', p.CodeUri);
    if (p.DefinitionUri) p.DefinitionUri = join(ROOT, '.aws-sam', 'build', p.DefinitionUri);
  }
  change(template.Resources);
  const path = join(folder, `${name}.yaml`);
  writeFileSync(path, stringify(template));
  return path;
}

function deploy(): Deployment[] {
  for (const [path, what] of [
    [PYTHON, '.venv-moto'],
    [SAM, '.venv-sam'],
    [BUILT, "sam build's output"],
  ]) {
    if (!existsSync(path)) throw new Error(`no ${what}: run \`npm test\`, which creates it first`);
  }
  const folder = tempFolder('cai-deploy-');
  try {
    const oldControlBucket = { 'Fn::Sub': '${AWS::StackName}-control-${AWS::AccountId}-${AWS::Region}' };
    const withCycle = variant(folder, 'with-cycle', (r) => {
      r.CaiStateMachine.Properties.DefinitionSubstitutions.ControlBucketName = { Ref: 'ControlBucket' };
    });
    const namedByStack = variant(folder, 'named-by-stack', (r) => {
      r.ControlBucket.Properties.BucketName = oldControlBucket;
    });
    const notRetained = variant(folder, 'not-retained', (r) => {
      const bucket = r.ControlBucket as unknown as Record<string, unknown>;
      delete bucket.DeletionPolicy;
      delete bucket.UpdateReplacePolicy;
    });
    const tableNotRetained = variant(folder, 'table-not-retained', (r) => {
      const table = r.RunsTable as unknown as Record<string, unknown>;
      delete table.DeletionPolicy;
      delete table.UpdateReplacePolicy;
      delete r.RunsTable.Properties.DeletionProtectionEnabled;
    });
    // S3 may invoke the initializer for another bucket only: S3 cannot put the control bucket's notification.
    const permissionElsewhere = variant(folder, 'permission-elsewhere', (r) => {
      r.InitializerFunctionPayloadUploadedPermission.Properties.SourceArn = 'arn:aws:s3:::another-bucket';
    });
    const miswiredAlarm = variant(folder, 'miswired-alarm', (r) => {
      r.InferenceErrorsAlarm.Properties.Dimensions = [{ Name: 'FunctionName', Value: { Ref: 'SummarizerFunction' } }];
    });
    const quick = ['--resolve-s3', '--capabilities', 'CAPABILITY_IAM', '--no-confirm-changeset'];
    copyFileSync(join(ROOT, 'samconfig.toml'), join(folder, 'samconfig.toml'));
    // sam deploy --guided's prompts, in order: stack name, region, the template's parameters in
    // their order, then confirm, role creation, rollback, save, file, environment; then the change set.
    const parameters = Object.keys(readTemplate(ROOT).Parameters ?? {}).map((name) => (name === 'Architecture' ? 'arm64' : ''));
    const guided = ['cai-guided', '', ...parameters, '', '', '', '', '', '', 'y'].join('\n') + '\n';
    const deployments = [
      // Exactly what the README says: `sam deploy` with samconfig.toml, answering its confirmation.
      { name: 'plain', args: [], answers: 'y\n', stackName: 'cai', delete: true },
      {
        name: 'long name, result buckets, data bucket',
        args: [
          '--stack-name',
          LONG_STACK,
          ...quick,
          '--parameter-overrides',
          `ResultBucketNames=seed-results,survey-results DataBucketName=survey-data InferenceReservedConcurrency=50 AlarmEmail=${ALARM_EMAIL}`,
        ],
        stackName: LONG_STACK,
      },
      // 1,000 - 901 leaves 99 of an account's default quota unreserved: Lambda refuses it.
      {
        name: 'reserving too much',
        args: ['--stack-name', 'cai-reserved', ...quick, '--parameter-overrides', 'InferenceReservedConcurrency=901'],
        stackName: 'cai-reserved',
      },
      { name: 'guided', args: ['--guided', '--config-file', join(folder, 'samconfig.toml')], answers: guided, stackName: 'cai-guided' },
      { name: 'with cycle', args: ['--template-file', withCycle, '--stack-name', 'cai-cycle', ...quick], stackName: 'cai-cycle' },
      {
        name: 'not retained',
        args: ['--template-file', notRetained, '--stack-name', 'cai-not-retained', ...quick],
        stackName: 'cai-not-retained',
        delete: true,
      },
      {
        name: 'table not retained',
        args: ['--template-file', tableNotRetained, '--stack-name', 'cai-table-not-retained', ...quick],
        stackName: 'cai-table-not-retained',
        delete: true,
      },
      {
        name: 'permission for another bucket',
        args: ['--template-file', permissionElsewhere, '--stack-name', 'cai-permission-elsewhere', ...quick],
        stackName: 'cai-permission-elsewhere',
      },
      {
        name: 'miswired alarm',
        args: ['--template-file', miswiredAlarm, '--stack-name', 'cai-miswired-alarm', ...quick],
        stackName: 'cai-miswired-alarm',
      },
      {
        name: 'bucket named by stack',
        args: ['--template-file', namedByStack, '--stack-name', LONG_STACK.replace('CAI', 'Old'), ...quick],
        stackName: LONG_STACK.replace('CAI', 'Old'),
      },
    ].map((d) => ({ ...d, cwd: ROOT }));
    const run = spawnSync(PYTHON, [join(ROOT, 'tests', 'python', 'moto_deploy.py')], {
      input: JSON.stringify({ sam: SAM, deployments }),
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    });
    if (run.status !== 0) throw new Error(`moto deploy failed: ${run.stderr.slice(-3000)}`);
    const result = (JSON.parse(run.stdout) as { deployments: Deployment[] }).deployments;
    guidedOverrides = samConfigOverrides(folder, 'deploy');
    return result;
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

let guidedOverrides: Record<string, string> = {};
const deployments = deploy();
const byName = (name: string) => deployments.find((d) => d.name === name)!;
const plain = byName('plain');
const stack = plain.stack!;
const fn = (id: string) => stack.functions[id];

test('a plain `sam deploy` (samconfig.toml, confirmed at its prompt) creates the stack and prints its Outputs', () => {
  process.stderr.write(`deploy: sam deploy into moto in ${deployments.map((d) => `${d.name} ${d.seconds} s`).join(', ')}\n`);
  expect([plain.exit, plain.output.includes('Successfully created/updated stack - cai')]).toEqual([0, true]);
  expect(plain.output).toMatch(/Deploy this changeset\? \[y\/N\]/);
  expect(stack.status).toBe('CREATE_COMPLETE');
  // What a user needs next, as Outputs: where to upload, which table to query, which state machine runs.
  expect(stack.outputs).toEqual({
    ControlBucketName: stack.bucket.name,
    RunsTableName: stack.table.name,
    StateMachineArn: stack.stateMachine.arn,
    FailedEventsQueueUrl: stack.queues.FailedEventsQueue.url,
    AlarmTopicArn: stack.resources.AlarmTopic.id,
    DashboardName: 'cai-us-east-1',
    DashboardUrl: 'https://console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards/dashboard/cai-us-east-1',
  });
  expect(Object.keys(stack.dashboards)).toEqual(['cai-us-east-1']);
  // Printed at the end of the deploy (sam wraps the long ARN over two lines).
  for (const value of [stack.bucket.name, stack.table.name]) expect(plain.output).toContain(value);
});

test("the control bucket's notification reaches the initializer for runs/…payload.json only", () => {
  const initializer = fn('InitializerFunction').arn;
  expect(plain.probes).toMatchObject({
    'put runs/survey/payload.json': [initializer],
    'put payload.json': [],
    'put data/survey/payload.json': [],
    'put runs/survey/notes.json': [],
    'put runs/survey/payload.json.bak': [],
  });
  // S3 may invoke it (the permission S3 checks when the notification is put) for this bucket, from this account only.
  const [grant] = fn('InitializerFunction').policy!.Statement;
  expect(grant).toMatchObject({
    Principal: { Service: 's3.amazonaws.com' },
    Action: 'lambda:InvokeFunction',
    Condition: { ArnLike: { 'AWS:SourceArn': `arn:aws:s3:::${stack.bucket.name}` }, StringEquals: { 'AWS:SourceAccount': '123456789012' } },
  });
  // The control: a permission for another bucket, and S3 refuses to put the notification, so the deploy fails.
  const elsewhere = byName('permission for another bucket');
  expect(elsewhere.exit).not.toBe(0);
  // sam deploy's event table wraps the reason ("Unable to validate the following destination configurations") in its column.
  expect(elsewhere.output).toMatch(/CREATE_FAILED\s+AWS::S3::Bucket\s+ControlBucket\s+Unable to validate the/);
  expect(elsewhere.output).toMatch(/Failed to create\/update the stack: cai-permission-elsewhere, .*"ROLLBACK_COMPLETE"/);
});

test("the control bucket expires the Map's result files after MapResultsExpirationDays and aborts uploads left incomplete", () => {
  expect(stack.bucket.lifecycle).toEqual([
    { ID: 'ExpireMapResults', Status: 'Enabled', Filter: { Prefix: 'map-results/' }, Expiration: { Days: 30 } },
    {
      ID: 'AbortIncompleteMultipartUploads',
      Status: 'Enabled',
      Filter: { Prefix: '' },
      AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 },
    },
  ]);
});

test("the EventBridge rule sends this state machine's FAILED, TIMED_OUT and ABORTED executions to the summarizer, nothing else", () => {
  const summarizer = fn('SummarizerFunction').arn;
  const reached = Object.fromEntries(Object.entries(plain.probes!).filter(([label]) => label.startsWith('execution')));
  expect(reached).toEqual({
    'execution FAILED of this state machine': [summarizer],
    'execution TIMED_OUT of this state machine': [summarizer],
    'execution ABORTED of this state machine': [summarizer],
    'execution SUCCEEDED of this state machine': [],
    'execution RUNNING of this state machine': [],
    'execution FAILED of another state machine': [],
  });
});

test('no event is lost: both asynchronous paths end, after their retries, in the failed-events queue', () => {
  const queue = stack.queues.FailedEventsQueue;
  expect(queue.retentionSeconds).toBe(1_209_600); // SQS's longest, 14 days
  // Lambda's asynchronous invocation of each function: two retries, then the on-failure destination.
  for (const id of ['InitializerFunction', 'SummarizerFunction']) {
    expect(fn(id).asyncConfig).toEqual({
      MaximumRetryAttempts: 2,
      MaximumEventAgeInSeconds: 21600,
      DestinationConfig: { OnFailure: { Destination: queue.arn } },
    });
    expect(allows(stack.roles[`${id}Role`].statements, { action: 'sqs:SendMessage', resource: queue.arn })).toBe(true);
  }
  expect(fn('InferenceFunction').asyncConfig).toBeNull(); // invoked synchronously by the state machine
  // EventBridge's delivery to the summarizer: retried for a day, then the rule's dead-letter queue.
  const [rule] = Object.values(stack.rules).filter((r) => r.targets.includes(fn('SummarizerFunction').arn));
  expect([rule.deadLetters, rule.retryPolicies]).toEqual([[queue.arn], [{ MaximumRetryAttempts: 185, MaximumEventAgeInSeconds: 86400 }]]);
});

test('`sam delete` deletes the stack and keeps the control bucket with its runs (DeletionPolicy Retain)', () => {
  expect(plain.deleted).toMatchObject({ exit: 0, bucketObjects: 5 }); // the probes' five uploads
  expect(plain.deleted!.stackStatus ?? 'DELETE_COMPLETE').toBe('DELETE_COMPLETE');
  // The control: without Retain, S3 refuses to delete the bucket that holds objects, and the deletion fails.
  const control = byName('not retained');
  expect(control.exit).toBe(0);
  expect(control.deleted!.exit).not.toBe(0);
  expect(control.deleted!.output).toMatch(/Failed to delete stack/);
  expect(control.deleted!.bucketObjects).toBe(5);
});

test('`sam delete` keeps the runs table with every record, still protected from DeleteTable (Retain, DeletionProtectionEnabled)', () => {
  expect(stack.table.deletionProtection).toBe(true);
  expect(plain.deleted).toMatchObject({ exit: 0, tableRecords: 1 }); // the probe's run record
  expect(plain.deleted!.deleteTableRefused).toMatch(
    /^ValidationException: .*can't be deleted while DeletionProtectionEnabled is set to True/,
  );
  // The control: without Retain and protection, `sam delete` succeeds and the table goes, with every record.
  const control = byName('table not retained');
  expect([control.exit, control.stack?.table.deletionProtection]).toEqual([0, false]);
  expect(control.deleted).toMatchObject({ exit: 0, tableRecords: null, bucketObjects: 5 });
});

test('the state machine definition has every substitution resolved, to this stack’s functions and bucket', () => {
  const { definition } = stack.stateMachine;
  expect(definition).not.toMatch(/\$\{/);
  const states = JSON.parse(definition).States;
  const task = (state: { Parameters: { FunctionName: string } }) => state.Parameters.FunctionName;
  expect(task(states.Infer.ItemProcessor.States.InferRank)).toBe(fn('InferenceFunction').arn);
  expect(task(states.Summarize)).toBe(fn('SummarizerFunction').arn);
  expect(task(states.RecordFailure)).toBe(fn('SummarizerFunction').arn);
  expect(states.Infer.ResultWriter.Parameters.Bucket).toBe(stack.bucket.name);
  expect(stack.stateMachine.roleArn).toBe(stack.roles.CaiStateMachineRole.arn);
});

test('the runs table has the key and the indexes the code queries', () => {
  expect(stack.table.keys).toEqual([{ AttributeName: 'runId', KeyType: 'HASH' }]);
  expect(stack.table.indexes).toEqual(
    Object.values(RUNS_INDEXES).map(({ IndexName, hash, range }) => ({
      name: IndexName,
      keys: [
        { AttributeName: hash, KeyType: 'HASH' },
        { AttributeName: range, KeyType: 'RANGE' },
      ],
      projection: { ProjectionType: 'ALL' },
    })),
  );
  expect(stack.table.billing).toBe('PAY_PER_REQUEST');
});

test('each function is configured from the template and names the resources the stack made', () => {
  for (const id of ['InitializerFunction', 'InferenceFunction', 'SummarizerFunction']) {
    expect(fn(id)).toMatchObject({ runtime: 'nodejs22.x', architectures: ['x86_64'] });
    expect(fn(id).environment.RUNS_TABLE).toBe(stack.table.name);
  }
  expect(fn('InferenceFunction')).toMatchObject({ memory: 1769, timeout: 900 });
  // Lambda keeps every variable as a string; moto keeps a Number parameter's value as a number.
  const environment = Object.fromEntries(Object.entries(fn('InitializerFunction').environment).map(([k, v]) => [k, String(v)]));
  expect(environment).toMatchObject({
    STATE_MACHINE_ARN: stack.stateMachine.arn,
    CONTROL_BUCKET: stack.bucket.name,
    INFERENCE_MEMORY_MB: '1769',
    INFERENCE_TIMEOUT_S: '900',
  });
});

test("every log group keeps its logs LogRetentionDays: each function's and the state machine's", () => {
  const names = Object.keys(stack.logGroups).sort();
  expect(names).toEqual(
    [
      ...['InitializerFunction', 'InferenceFunction', 'SummarizerFunction'].map((id) => `/aws/lambda/${stack.resources[id].id}`),
      `/aws/vendedlogs/states/${stack.stateMachine.name}`,
    ].sort(),
  );
  expect(new Set(Object.values(stack.logGroups))).toEqual(new Set([30]));
});

/** Each alarm, by logical id: what it watches (namespace, metric, dimensions as CloudWatch holds them). */
function alarmWiring(deployed: DeployedStack): Record<string, [string, string, { Name: string; Value: string }[]]> {
  return Object.fromEntries(
    Object.entries(deployed.resources)
      .filter(([, r]) => r.type === 'AWS::CloudWatch::Alarm')
      .map(([id, r]) => {
        const alarm = deployed.alarms[r.id];
        return [id, [alarm.Namespace, alarm.MetricName, alarm.Dimensions]];
      }),
  );
}

/** What each alarm must watch: this stack's state machine, inference function and queue; the account's Map Runs. */
function expectedWiring(deployed: DeployedStack): ReturnType<typeof alarmWiring> {
  const machine = [{ Name: 'StateMachineArn', Value: deployed.stateMachine.arn }];
  const inference = [{ Name: 'FunctionName', Value: deployed.resources.InferenceFunction.id }];
  const queueName = deployed.queues.FailedEventsQueue.url.split('/').pop()!;
  return {
    ExecutionsFailedAlarm: ['AWS/States', 'ExecutionsFailed', machine],
    ExecutionsTimedOutAlarm: ['AWS/States', 'ExecutionsTimedOut', machine],
    ExecutionsAbortedAlarm: ['AWS/States', 'ExecutionsAborted', machine],
    InferenceErrorsAlarm: ['AWS/Lambda', 'Errors', inference],
    InferenceThrottlesAlarm: ['AWS/Lambda', 'Throttles', inference],
    PartitionFailuresAlarm: ['CAI', 'PartitionFailures', [{ Name: 'service', Value: 'cai' }]],
    FailedEventsAlarm: ['AWS/SQS', 'ApproximateNumberOfMessagesVisible', [{ Name: 'QueueName', Value: queueName }]],
    OpenMapRunsAlarm: ['AWS/States', 'ApproximateOpenMapRunCount', []],
  };
}

/** The metric names each handler emits (as quoted literals: addMetric('X', …) or its outcome table). */
function emittedMetrics(): Record<string, string[]> {
  return Object.fromEntries(
    ['initializer', 'inference', 'summarizer'].map((name) => {
      const source = readFileSync(join(ROOT, 'functions', name, 'handler.ts'), 'utf8');
      return [name, [...source.matchAll(/'([A-Z][A-Za-z]+)'/g)].map((m) => m[1])];
    }),
  );
}

test("every alarm watches this stack's state machine, inference function and queue, and notifies the alarm topic", () => {
  expect(alarmWiring(stack)).toEqual(expectedWiring(stack));
  const topic = stack.resources.AlarmTopic.id;
  for (const alarm of Object.values(stack.alarms)) {
    expect(alarm).toMatchObject({
      AlarmActions: [topic],
      TreatMissingData: 'notBreaching',
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    });
    expect(alarm.AlarmDescription.length).toBeGreaterThan(60); // what it means and what to do
  }
  const byId = (id: string) => stack.alarms[stack.resources[id].id];
  // Throttling is expected for a while (ranks wait and retry): only 15 minutes of it alarms.
  expect([byId('InferenceThrottlesAlarm').EvaluationPeriods, byId('InferenceThrottlesAlarm').DatapointsToAlarm]).toEqual([3, 3]);
  // AWS's recommendation for OpenMapRunLimit (1,000): Maximum, at 900.
  expect([byId('OpenMapRunsAlarm').Statistic, byId('OpenMapRunsAlarm').Threshold]).toEqual(['Maximum', 900]);
  // The control: an alarm on another function than the inference one is told apart.
  const miswired = byName('miswired alarm').stack!;
  const wrong = alarmWiring(miswired);
  expect(wrong).not.toEqual(expectedWiring(miswired));
  expect(wrong.InferenceErrorsAlarm[2]).toEqual([{ Name: 'FunctionName', Value: miswired.resources.SummarizerFunction.id }]);
});

test('the alarm topic has an e-mail subscription only when AlarmEmail is given', () => {
  expect(stack.topics.AlarmTopic).toEqual([]);
  expect(byName('long name, result buckets, data bucket').stack!.topics.AlarmTopic).toEqual([{ protocol: 'email', endpoint: ALARM_EMAIL }]);
});

test("AlarmEmail takes one address or none: CloudFormation refuses any other value by the parameter's AllowedPattern", () => {
  // CloudFormation checks a String parameter against its AllowedPattern before creating anything (moto does not).
  const { AllowedPattern } = readTemplate(ROOT).Parameters!.AlarmEmail as { AllowedPattern: string };
  const accepted = (value: string) => new RegExp(`^(?:${AllowedPattern})$`).test(value);
  const values = ['', ALARM_EMAIL, 'ops@example', 'ops', 'a@example.org,b@example.org', 'a b@example.org', '@example.org'];
  expect(values.map((v) => [v, accepted(v)])).toEqual(values.map((v) => [v, v === '' || v === ALARM_EMAIL]));
});

test("the dashboard's body is JSON drawing this stack's functions, state machine, queue and alarms, and metrics the functions emit", () => {
  const body = Object.values(stack.dashboards)[0];
  expect(body).not.toMatch(/\$\{/);
  const widgets = (
    JSON.parse(body) as { widgets: { type: string; properties: { title: string; metrics?: unknown[][]; alarms?: string[] } }[] }
  ).widgets;
  expect(widgets.map((w) => w.properties.title)).toEqual([
    'Alarms',
    'Runs (executions)',
    'Ranks (inference invocations)',
    'Objects/s (samples inferred)',
    'Errors',
    'Throttles',
    'Durations (ms)',
    'Open Map Runs (account)',
  ]);
  expect(widgets[0].properties.alarms!.sort()).toEqual(
    Object.values(stack.alarms)
      .map((a) => a.AlarmArn)
      .sort(),
  );
  // Every metric line: [namespace, name, dimension, value, …, {options}]; a line that is an expression has no namespace.
  const lines = widgets.flatMap((w) => w.properties.metrics ?? []).filter((line) => typeof line[0] === 'string') as string[][];
  const dimensionValues = (name: string) => new Set(lines.flatMap((l) => (l[2] === name ? [l[3]] : [])));
  const functions = ['InitializerFunction', 'InferenceFunction', 'SummarizerFunction'].map((id) => stack.resources[id].id);
  expect(dimensionValues('FunctionName')).toEqual(new Set(functions));
  expect(dimensionValues('StateMachineArn')).toEqual(new Set([stack.stateMachine.arn]));
  expect(dimensionValues('QueueName')).toEqual(new Set([stack.queues.FailedEventsQueue.url.split('/').pop()]));
  // CAI metrics are the functions' own (Powertools, dimension service=cai): each the dashboard or an alarm
  // names is emitted, by one handler only (the summarizer's run total is RunSamples, so objects/s counts each object once).
  const emitted = emittedMetrics();
  const cai = [...new Set(lines.filter((l) => l[0] === 'CAI').map((l) => l[1]))].sort();
  expect(cai).toEqual(['PartitionFailures', 'RankErrors', 'RunsRejected', 'Samples']);
  const alarmed = Object.values(stack.alarms).flatMap((a) => (a.Namespace === 'CAI' ? [a.MetricName] : []));
  expect(alarmed).toEqual(['PartitionFailures']);
  for (const metric of new Set([...cai, ...alarmed])) {
    expect([metric, Object.keys(emitted).filter((name) => emitted[name].includes(metric))]).toEqual([metric, [expect.any(String)]]);
  }
  expect(emitted.inference).toContain('Samples');
});

test("each role's statements, as IAM holds them, let its function do its part on this stack's resources", () => {
  const role = (id: string) => stack.roles[`${id}Role`].statements;
  const bucket = `arn:aws:s3:::${stack.bucket.name}`;
  const table = `arn:aws:dynamodb:us-east-1:123456789012:table/${stack.table.name}`;
  // A Distributed Map's child executions are named under the state machine: execution:<machine>/<map label>:<name>.
  const child = `arn:aws:states:us-east-1:123456789012:execution:${stack.stateMachine.name}`;
  const checks: [string, string, string, boolean][] = [
    ['InitializerFunction', 's3:GetObject', `${bucket}/runs/survey/payload.json`, true],
    ['InitializerFunction', 's3:PutObject', `${bucket}/results/run-1/manifest.json`, true],
    ['InitializerFunction', 'dynamodb:PutItem', table, true],
    ['InitializerFunction', 'states:StartExecution', stack.stateMachine.arn, true],
    ['InitializerFunction', 'lambda:GetAccountSettings', '*', true],
    ['InferenceFunction', 'lambda:GetAccountSettings', '*', false],
    ['InferenceFunction', 's3:GetObject', `${bucket}/data/1.pt`, true],
    ['InferenceFunction', 's3:GetObject', `${bucket}/runs/survey/payload.json`, false],
    ['InferenceFunction', 's3:PutObject', `${bucket}/results/run-1/ranks/0.json`, true],
    ['InferenceFunction', 'dynamodb:PutItem', table, false],
    ['InferenceFunction', 'states:StartExecution', stack.stateMachine.arn, false],
    ['SummarizerFunction', 'dynamodb:UpdateItem', table, true],
    ['SummarizerFunction', 's3:PutObject', `${bucket}/results/run-1/summary.json`, true],
    ['SummarizerFunction', 'states:StartExecution', stack.stateMachine.arn, false],
    ['SummarizerFunction', 'states:GetExecutionHistory', `${child}/Infer:0a1b-7`, true],
    [
      'SummarizerFunction',
      'states:GetExecutionHistory',
      `${child.replace(stack.stateMachine.name, 'another-machine')}/Infer:0a1b-7`,
      false,
    ],
    ['InferenceFunction', 'states:GetExecutionHistory', `${child}/Infer:0a1b-7`, false],
    ['CaiStateMachine', 'lambda:InvokeFunction', fn('InferenceFunction').arn, true],
    ['CaiStateMachine', 'lambda:InvokeFunction', fn('InitializerFunction').arn, false],
    ['CaiStateMachine', 'states:StartExecution', stack.stateMachine.arn, true],
  ];
  const verdicts = checks.map(([id, action, resource]) => [id, action, resource, allows(role(id), { action, resource })]);
  expect(verdicts).toEqual(checks);
});

test('`sam deploy --guided` deploys with its answers and saves them where the local stack reads its parameters', () => {
  const guided = byName('guided');
  expect([guided.exit, guided.stack?.status]).toEqual([0, 'CREATE_COMPLETE']);
  expect(guided.output).toMatch(/Parameter Architecture \[x86_64\]/); // samconfig.toml's value offered as the default
  // Saved in [default.deploy.parameters] (quoted, as the guided flow writes them), read back by the
  // local stack and the next `sam deploy` (the artifact carries ONNX Runtime for both architectures).
  expect(guidedOverrides).toMatchObject({ Architecture: 'arm64', InferenceMemorySize: '1769', MaxConcurrency: '100' });
  expect(samConfigOverrides(ROOT, 'build').Architecture).toBe('x86_64'); // the control: the build section alone misses it
});

test('any stack name deploys: upper case and 128 characters still make a valid bucket and state machine name', () => {
  const long = byName('long name, result buckets, data bucket');
  expect([long.exit, long.stack?.status]).toEqual([0, 'CREATE_COMPLETE']);
  const { bucket, stateMachine, functions, roles } = long.stack!;
  // S3's rules for a bucket name; Step Functions' for a state machine name.
  expect(bucket.name).toMatch(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/);
  expect(stateMachine.name.length).toBeLessThanOrEqual(80);
  expect(functions.InitializerFunction.environment.RESULT_BUCKETS).toBe('seed-results,survey-results');
  // With result buckets and a data bucket, the conditional statements are there, and IAM took them.
  expect(allows(roles.InferenceFunctionRole.statements, { action: 's3:GetObject', resource: 'arn:aws:s3:::survey-data/sky/1.pt' })).toBe(
    true,
  );
  expect(allows(roles.InferenceFunctionRole.statements, { action: 's3:PutObject', resource: 'arn:aws:s3:::seed-results/r/0.json' })).toBe(
    true,
  );
  // The control case: the bucket named after the stack, as before, is refused by S3 at that name.
  const old = byName('bucket named by stack');
  expect(old.exit).not.toBe(0);
  expect(old.output).toMatch(/InvalidBucketName|bucket is not valid/);
});

test('InferenceReservedConcurrency reserves that much for the inference function only; 0 reserves none; one that leaves under 100 unreserved fails the deploy', () => {
  // The default, 0: the template's condition leaves the property out (a reserved concurrency of 0 would stop the function).
  expect(Object.values(stack.functions).map((f) => f.reservedConcurrency)).toEqual([null, null, null]);
  const reserved = byName('long name, result buckets, data bucket').stack!.functions;
  expect(reserved.InferenceFunction.reservedConcurrency).toBe(50);
  expect([reserved.InitializerFunction.reservedConcurrency, reserved.SummarizerFunction.reservedConcurrency]).toEqual([null, null]);
  // The initializer clamps the Map to it (functions/initializer/handler.ts).
  expect(String(reserved.InitializerFunction.environment.INFERENCE_RESERVED_CONCURRENCY)).toBe('50');
  const refused = byName('reserving too much');
  expect(refused.exit).not.toBe(0);
  // Lambda's InvalidParameterValueException, as moto's CloudFormation passes it on (its quote escaped), in
  // the stack's CREATE_FAILED event: sam deploy wraps the reason over its table's lines, so white space is dropped.
  expect(refused.output.replace(/\s+/g, '')).toMatch(
    /SpecifiedReservedConcurrentExecutionsforfunctiondecreasesaccount\\?'sUnreservedConcurrentExecutionbelowitsminimumvalueof\[100\]\./,
  );
  expect(refused.stack).toBeUndefined();
});

/** The resources cfn-lint names in a dependency cycle of template.yaml changed by `change` (SAM's transform first). */
function lintCycles(change: (source: string) => string): string[] {
  const folder = tempFolder('cai-lint-');
  try {
    const source = readFileSync(join(ROOT, 'template.yaml'), 'utf8');
    const changed = change(source);
    expect(changed).not.toBe(source);
    writeFileSync(join(folder, 'template.yaml'), changed);
    const translate = spawnSync(
      join(ROOT, '.venv-sam', 'bin', 'python'),
      [join(ROOT, 'tests', 'python', 'sam_translate.py'), ROOT, join(folder, 'template.yaml')],
      {
        encoding: 'utf8',
        maxBuffer: 16 << 20,
      },
    );
    writeFileSync(join(folder, 'transformed.json'), translate.stdout);
    const lint = spawnSync(join(ROOT, '.venv-sam', 'bin', 'cfn-lint'), [join(folder, 'transformed.json')], { encoding: 'utf8' });
    expect(lint.status).not.toBe(0);
    return [...lint.stdout.matchAll(/E3004 Circular Dependencies for resource (\w+)/g)].map((m) => m[1]).sort();
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

test('the control case: the template before the fix is refused, its cycle named, before anything is created', () => {
  // npm test's first gate (scripts/sam-check.sh: cfn-lint of the transformed template) names it in seconds…
  expect(lintCycles((source) => source.replace(/^(\s+ControlBucketName): !Sub .*$/m, '$1: !Ref ControlBucket'))).toEqual([
    'CaiStateMachine',
    'ControlBucket',
    'InitializerFunction',
    'InitializerFunctionPayloadUploadedPermission',
  ]);
  // …and CloudFormation (here moto's, with the check CloudFormation makes) refuses the change set.
  const cycle = byName('with cycle');
  expect(cycle.exit).not.toBe(0);
  expect(cycle.output).toContain(
    'Circular dependency between resources: [CaiStateMachine, ControlBucket, InitializerFunction, InitializerFunctionPayloadUploadedPermission, InitializerFunctionRole]',
  );
  expect(cycle.stack).toBeUndefined();
});

test("the permission's SourceArn by the bucket's !Sub, not !GetAtt ControlBucket.Arn, which closes a cycle", () => {
  // The bucket depends on the permission (S3 checks it when the notification is put).
  expect(lintCycles((source) => source.replace(/^(\s+SourceArn): !Sub .*$/m, '$1: !GetAtt ControlBucket.Arn'))).toEqual([
    'ControlBucket',
    'InitializerFunctionPayloadUploadedPermission',
  ]);
});

test("an artifact over Lambda's 250 MiB unzipped is refused by the build (so by `sam build`) in one line", () => {
  const folder = tempFolder('cai-big-');
  try {
    const model = join(folder, 'big.onnx');
    // The quick-start model padded to `bytes` with a field ONNX does not define (protobuf readers skip it).
    const padded = (bytes: number) => {
      const base = readFileSync(join(ROOT, 'model', 'default.onnx'));
      const varint = (n: number) => {
        const out: number[] = [];
        for (; n >= 0x80; n = Math.floor(n / 0x80)) out.push((n % 0x80) | 0x80);
        return [...out, n];
      };
      const length = bytes - base.length - 2 - varint(bytes).length;
      writeFileSync(model, Buffer.concat([base, Buffer.from([0x9a, 0x06, ...varint(length)])]));
      truncateSync(model, base.length + 2 + varint(length).length + length);
    };
    padded(190_000_000); // with ONNX Runtime's two Linux binaries and the bundles (~75 MB), just over 262,144,000 bytes
    const build = (out: string) =>
      spawnSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs'), '--lambda', 'inference', '--out', out, '--model', model], {
        cwd: ROOT,
        encoding: 'utf8',
      });
    const refused = build(join(folder, 'artifact'));
    expect(refused.status).toBe(1);
    expect(refused.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(
        /^build: the inference artifact is 26\d\.\d MB unzipped, over Lambda's 250 MiB \(262\.1 MB\) limit; the model is 190\.0 MB of it, and at most 18\d\.\d MB fits$/,
      ),
    ]);
    // The control: 5 MB less fits.
    padded(185_000_000);
    expect(build(join(folder, 'artifact')).stderr).toBe('');
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
});

test('a deployed model without a card, or with one that does not parse or fit, is refused by the build in one line', () => {
  const folder = tempFolder('cai-card-');
  try {
    runPython(pythonScript('make_onnx_models.py'), [folder]);
    const build = (model: string) =>
      spawnSync(
        process.execPath,
        [join(ROOT, 'scripts', 'build.mjs'), '--lambda', 'inference', '--out', join(folder, 'artifact'), '--model', model],
        {
          cwd: ROOT,
          encoding: 'utf8',
        },
      );
    const uncarded = build(join(folder, 'classifier.onnx'));
    expect([uncarded.status, uncarded.stderr]).toEqual([
      1,
      `build: ${join(folder, 'classifier.onnx')}: no card beside it and none in its metadata (cai.card)\n`,
    ]);
    writeFileSync(join(folder, 'classifier.card.json'), '{"inputs": ');
    expect(build(join(folder, 'classifier.onnx')).stderr).toMatch(/^build: .*classifier\.onnx's card: the card is not JSON: [^\n]*\n$/);
    writeFileSync(
      join(folder, 'classifier.card.json'),
      JSON.stringify({
        inputs: { image: { tensor: 0, dtype: 'float32' } },
        outputs: { logits: { task: 'classification', classes: ['a', 'b'], scores: 'logits' } },
      }),
    );
    expect(build(join(folder, 'classifier.onnx')).stderr).toBe(
      `build: ${join(folder, 'classifier.onnx')}: output logits: the card names 2 classes, the graph's output has 3\n`,
    );
    // The control: the card that fits builds, and goes into the artifact beside the model.
    writeFileSync(
      join(folder, 'classifier.card.json'),
      JSON.stringify({
        inputs: { image: { tensor: 0, dtype: 'float32' } },
        outputs: { logits: { task: 'classification', classes: ['a', 'b', 'c'], scores: 'logits' } },
      }),
    );
    expect(build(join(folder, 'classifier.onnx')).status).toBe(0);
    expect(JSON.parse(readFileSync(join(folder, 'artifact', 'model.card.json'), 'utf8')).outputs.logits.classes).toHaveLength(3);
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
});
