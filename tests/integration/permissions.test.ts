import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { outputKeys } from '../../functions/commons/run/output-keys';
import { CONTROL_DATA_FOLDER } from '../../functions/commons/run/payload';
import { resolver, type SamTemplate } from '../../local/template';
import { allows, list, matches, type Need, type Statement } from '../helpers/iam';
import { ROOT } from '../../local/paths';

/**
 * The state machine's role, as SAM's own translator expands template.yaml, holds exactly what the
 * deployed definition needs: every call the definition makes (Lambda invocations, the Map's
 * ItemReader and ResultWriter, the Distributed Map's child executions) is allowed, for every bucket a
 * payload may name, and every grant is used by one of them.
 */
const ACCOUNT = '123456789012';
const STACK = 'CAI-Survey';
const STACK_UUID = '1c2fa620-982a-11e3-aff7-50e2416294e0';
const RESULT_BUCKETS = ['seed-results', 'survey-results'];

type Translated = SamTemplate & { Resources: Record<string, { Type: string; Properties: Record<string, unknown> }> };
/** SAM's translator names its managed policies in the partition of the region it runs in, as `sam deploy` does. */
const translate = (region = 'us-east-1'): Translated =>
  JSON.parse(
    execFileSync(join(ROOT, '.venv-sam', 'bin', 'python'), [join(ROOT, 'tests', 'python', 'sam_translate.py'), ROOT], {
      encoding: 'utf8',
      maxBuffer: 16 << 20,
      env: { ...process.env, AWS_DEFAULT_REGION: region },
    }),
  ) as Translated;
const translated = translate();

const functionName = (id: string) => `${STACK}-${id}-ABC123`;
const controlBucket = `cai-control-${STACK_UUID}`;
const { resolve } = resolver(translated, ROOT, {
  overrides: { ResultBucketNames: RESULT_BUCKETS.join(','), StateMachineTracing: 'Enabled' },
  accountId: ACCOUNT,
  stackName: STACK,
  stackUuid: STACK_UUID,
  resources: {
    ControlBucket: controlBucket,
    ...Object.fromEntries(
      ['InitializerFunction', 'InferenceFunction', 'SummarizerFunction'].flatMap((id) => [
        [id, functionName(id)],
        [`${id}.Arn`, `arn:aws:lambda:us-east-1:${ACCOUNT}:function:${functionName(id)}`],
      ]),
    ),
  },
});
const stateMachineArn = `arn:aws:states:us-east-1:${ACCOUNT}:stateMachine:cai-${STACK_UUID}`;

/** The role's Allow statements, intrinsics resolved. */
function roleStatements(): Statement[] {
  const role = translated.Resources.CaiStateMachineRole.Properties as { Policies: unknown[] };
  return (resolve(role.Policies as never) as ({ PolicyDocument: { Statement: Statement[] } } | undefined)[])
    .filter((p) => p !== undefined)
    .flatMap((p) => p!.PolicyDocument.Statement);
}

/** The definition as CloudFormation deploys it: the translator's string with DefinitionSubstitutions applied. */
function deployedDefinition(): Record<string, unknown> {
  const machine = translated.Resources.CaiStateMachine.Properties;
  let text = resolve(machine.DefinitionString as never) as string;
  const substitutions = resolve(machine.DefinitionSubstitutions as never) as Record<string, string>;
  for (const [name, value] of Object.entries(substitutions)) text = text.replaceAll(`\${${name}}`, value);
  return JSON.parse(text);
}

/** The calls the definition makes, walked from its states, for a run whose payload names `bucket`. */
function needsOf(definition: Record<string, unknown>, bucket: string): Need[] {
  const needs: Need[] = [];
  const runId = 'survey-20261122-abc';
  const walk = (states: Record<string, Record<string, unknown>>) => {
    for (const [name, state] of Object.entries(states)) {
      const parameters = state.Parameters as Record<string, unknown> | undefined;
      if (state.Resource === 'arn:aws:states:::lambda:invoke') {
        needs.push({ action: 'lambda:InvokeFunction', resource: String(parameters!.FunctionName), why: `${name} invokes` });
      }
      const reader = state.ItemReader as { Resource: string } | undefined;
      if (reader) {
        expect(reader.Resource).toBe('arn:aws:states:::s3:getObject');
        // Its Bucket and Key come from the execution input: the initializer's manifest in the payload's bucket.
        const key = outputKeys('results/survey', runId).manifest;
        needs.push({ action: 's3:GetObject', resource: `arn:aws:s3:::${bucket}/${key}`, why: `${name}'s ItemReader` });
      }
      const writer = state.ResultWriter as { Resource: string; Parameters: { Bucket: string; Prefix: string } } | undefined;
      if (writer) {
        expect(writer.Resource).toBe('arn:aws:states:::s3:putObject');
        const folder = `arn:aws:s3:::${writer.Parameters.Bucket}/${writer.Parameters.Prefix}/0a1b2c3d-map-run`;
        // What AWS documents a ResultWriter needs: it uploads result files in parts.
        for (const action of ['s3:PutObject', 's3:GetObject', 's3:ListMultipartUploadParts', 's3:AbortMultipartUpload']) {
          for (const file of ['manifest.json', 'SUCCEEDED_0.json']) {
            needs.push({ action, resource: `${folder}/${file}`, why: `${name}'s ResultWriter` });
          }
        }
      }
      const processor = state.ItemProcessor as { ProcessorConfig?: { Mode?: string }; States: never } | undefined;
      if (processor?.ProcessorConfig?.Mode === 'DISTRIBUTED') {
        const child = `arn:aws:states:us-east-1:${ACCOUNT}:execution:cai-${STACK_UUID}/${name}:0a1b2c3d-child`;
        needs.push({ action: 'states:StartExecution', resource: stateMachineArn, why: `${name} starts child executions` });
        needs.push({ action: 'states:DescribeExecution', resource: child, why: `${name} watches its children` });
        needs.push({ action: 'states:StopExecution', resource: child, why: `${name} stops its children` });
      }
      if (processor) walk(processor.States);
    }
  };
  walk(definition.States as never);
  return needs;
}

/**
 * Actions AWS documents as taking no resource ARN, so granted on "*": CloudWatch Logs' log deliveries
 * (Step Functions, "IAM policies for logging to CloudWatch Logs") and X-Ray's writes.
 */
const LOG_DELIVERY = [
  'logs:CreateLogDelivery',
  'logs:GetLogDelivery',
  'logs:UpdateLogDelivery',
  'logs:DeleteLogDelivery',
  'logs:ListLogDeliveries',
  'logs:PutResourcePolicy',
  'logs:DescribeResourcePolicies',
  'logs:DescribeLogGroups',
];
const XRAY_WRITES = ['xray:PutTraceSegments', 'xray:PutTelemetryRecords', 'xray:GetSamplingRules', 'xray:GetSamplingTargets'];
/** The initializer reads the account's concurrency: GetAccountSettings names no resource type ("Actions, resources, and condition keys for AWS Lambda"). */
const ACCOUNT_SETTINGS = ['lambda:GetAccountSettings'];

/** What the state machine's logging and tracing configuration need of its role. */
function observabilityNeeds(): Need[] {
  const machine = resolve(translated.Resources.CaiStateMachine.Properties as never) as {
    LoggingConfiguration?: { Level: string };
    TracingConfiguration?: { Enabled: boolean };
  };
  const logging = machine.LoggingConfiguration && machine.LoggingConfiguration.Level !== 'OFF';
  return [
    ...(logging ? LOG_DELIVERY.map((action) => ({ action, resource: '*', why: 'logging to CloudWatch Logs' })) : []),
    ...(machine.TracingConfiguration?.Enabled ? XRAY_WRITES.map((action) => ({ action, resource: '*', why: 'X-Ray tracing' })) : []),
  ];
}

const buckets = [controlBucket, ...RESULT_BUCKETS];
const definition = deployedDefinition();
const needs = [
  ...new Map(
    [...buckets.flatMap((bucket) => needsOf(definition, bucket)), ...observabilityNeeds()].map((n) => [`${n.action} ${n.resource}`, n]),
  ).values(),
];

test('every call the deployed definition makes is allowed, whichever permitted bucket the payload names', () => {
  expect(needs.length).toBeGreaterThan(15);
  expect(needs.map((n) => n.why)).toEqual(
    expect.arrayContaining([
      'InferRank invokes',
      'Summarize invokes',
      "Infer's ItemReader",
      "Infer's ResultWriter",
      'logging to CloudWatch Logs',
      'X-Ray tracing',
    ]),
  );
  const denied = needs.filter((n) => !allows(roleStatements(), n));
  expect(denied).toEqual([]);
});

test('every grant of the role is used by some call: nothing more than the definition needs', () => {
  const unused = roleStatements().flatMap((s) =>
    list(s.Action).flatMap((action) =>
      list(s.Resource)
        .filter((resource) => !needs.some((n) => matches(action, n.action) && matches(resource, n.resource)))
        .map((resource) => `${action} on ${resource}`),
    ),
  );
  expect(unused).toEqual([]);
  // No wildcard actions; "*" as a resource only for the actions AWS documents without resource ARNs.
  for (const s of roleStatements()) {
    expect(list(s.Action).filter((a) => a.includes('*'))).toEqual([]);
    if (list(s.Resource).includes('*')) expect(list(s.Action).filter((a) => ![...LOG_DELIVERY, ...XRAY_WRITES].includes(a))).toEqual([]);
  }
});

test('the check fails where AWS would: without the result buckets statement, a run writing to one cannot read its manifest', () => {
  const withoutResultBuckets = roleStatements().filter(
    (s) => !list(s.Resource).some((r) => r.startsWith(`arn:aws:s3:::${RESULT_BUCKETS[0]}`)),
  );
  const denied = needs.filter((n) => !allows(withoutResultBuckets, n));
  expect(denied.map((n) => `${n.action} ${n.resource}`)).toEqual(
    RESULT_BUCKETS.map((b) => `s3:GetObject arn:aws:s3:::${b}/results/survey/survey-20261122-abc/manifest.json`),
  );
  // The ResultWriter writes only to the control bucket, so a narrower grant there would be caught too.
  const readOnlyControl = roleStatements().filter((s) => !list(s.Action).includes('s3:PutObject'));
  const deniedWrites = needs.filter((n) => !allows(readOnlyControl, n));
  expect(deniedWrites).toHaveLength(6); // three write actions on two files (GetObject stays, for the manifest)
  expect(deniedWrites.every((n) => n.resource.startsWith(`arn:aws:s3:::${controlBucket}/map-results/`))).toBe(true);
  // Without the log-delivery statement, the logging configuration's needs, and only they, are denied.
  const noLogging = roleStatements().filter((s) => !list(s.Action).includes('logs:CreateLogDelivery'));
  expect(needs.filter((n) => !allows(noLogging, n)).map((n) => n.action)).toEqual(LOG_DELIVERY);
});

describe("a run's own model: the functions read models only where the template says", () => {
  const MODEL_BUCKETS = ['team-models'];
  const withModels = resolver(translated, ROOT, {
    overrides: { ModelBucketNames: MODEL_BUCKETS.join(','), DataBucketName: 'survey-data' },
    accountId: ACCOUNT,
    stackName: STACK,
    stackUuid: STACK_UUID,
    resources: { ControlBucket: controlBucket },
  });
  /** A function role's Allow statements, intrinsics resolved (SAM names the role <function>Role). */
  const functionStatements = (functionId: string, resolve = withModels.resolve): Statement[] => {
    const role = translated.Resources[`${functionId}Role`].Properties as { Policies: unknown[] };
    return (resolve(role.Policies as never) as ({ PolicyDocument: { Statement: Statement[] } } | undefined)[])
      .filter((p) => p !== undefined)
      .flatMap((p) => p!.PolicyDocument.Statement);
  };
  const read = (bucket: string, key: string): Need => ({ action: 's3:GetObject', resource: `arn:aws:s3:::${bucket}/${key}`, why: key });

  test.each(['InitializerFunction', 'InferenceFunction'])(
    '%s may read a model (and its card) in models/ or a ModelBucketNames bucket',
    (id) => {
      const statements = functionStatements(id);
      for (const need of [
        read(controlBucket, 'models/morphology.onnx'),
        read(controlBucket, 'models/morphology.card.json'),
        read('team-models', 'v2/anomaly.onnx'),
      ]) {
        expect([need.resource, allows(statements, need)]).toEqual([need.resource, true]);
      }
      expect(allows(statements, read('elsewhere', 'm.onnx'))).toBe(false);
    },
  );

  test("the inference function reads nothing else of the control bucket (its payloads, others' results)", () => {
    const statements = functionStatements('InferenceFunction');
    expect(allows(statements, read(controlBucket, 'runs/survey/payload.json'))).toBe(false);
    expect(allows(statements, read(controlBucket, 'results/other/ranks/0.json'))).toBe(false);
  });

  test("without DataBucketName, the inference function reads the control bucket's data/ and models/ only, not the rest of it", () => {
    const inControl = resolver(translated, ROOT, {
      overrides: { DataBucketName: '' },
      accountId: ACCOUNT,
      stackName: STACK,
      stackUuid: STACK_UUID,
      resources: { ControlBucket: controlBucket },
    });
    const statements = functionStatements('InferenceFunction', inControl.resolve);
    const verdicts = Object.fromEntries(
      [
        'data/survey/1.pt',
        'models/morphology.onnx',
        'runs/survey/payload.json',
        'results/other/ranks/0.json',
        'map-results/0a1b/SUCCEEDED_0.json',
        'survey/1.pt',
      ].map((key) => [key, allows(statements, read(controlBucket, key))]),
    );
    expect(verdicts).toEqual({
      'data/survey/1.pt': true,
      'models/morphology.onnx': true,
      'runs/survey/payload.json': false,
      'results/other/ranks/0.json': false,
      'map-results/0a1b/SUCCEEDED_0.json': false,
      'survey/1.pt': false, // the initializer refuses such a data_prefix (payload.ts checkDataBucket)
    });
    // A partition gone mid-run is a 404 (S3 answers 403 to a role that may not list the bucket).
    expect(allows(statements, { action: 's3:ListBucket', resource: `arn:aws:s3:::${controlBucket}` })).toBe(true);
  });

  test('the check can fail: without ModelBucketNames, a model there is denied to both', () => {
    const plain = resolver(translated, ROOT, {
      overrides: { DataBucketName: 'survey-data' },
      accountId: ACCOUNT,
      stackName: STACK,
      stackUuid: STACK_UUID,
      resources: { ControlBucket: controlBucket },
    });
    for (const id of ['InitializerFunction', 'InferenceFunction']) {
      expect(allows(functionStatements(id, plain.resolve), read('team-models', 'v2/anomaly.onnx'))).toBe(false);
      expect(allows(functionStatements(id, plain.resolve), read(controlBucket, 'models/morphology.onnx'))).toBe(true);
    }
  });
});

/** Every ARN in the stack's resources, the definition's service integrations included, as deployed in `region`. */
function arnsIn(region: string, partition: string): string[] {
  const template = translate(region);
  const { resolve: inPartition } = resolver(template, ROOT, {
    overrides: { ResultBucketNames: RESULT_BUCKETS.join(','), DataBucketName: 'survey-data' },
    accountId: ACCOUNT,
    stackName: STACK,
    stackUuid: STACK_UUID,
    region,
    partition,
  });
  const found: string[] = [];
  const walk = (node: unknown): void => {
    if (typeof node === 'string') found.push(...(node.match(/arn:[^"\s,]*/g) ?? []));
    else if (Array.isArray(node)) node.forEach(walk);
    else if (node && typeof node === 'object') Object.values(node).forEach(walk);
  };
  const resources = inPartition(template.Resources as never) as Record<string, { Properties: Record<string, unknown> }>;
  const { DefinitionString, DefinitionSubstitutions, ...machine } = resources.CaiStateMachine.Properties;
  walk({ ...resources, CaiStateMachine: machine });
  let definition = DefinitionString as string;
  for (const [name, value] of Object.entries(DefinitionSubstitutions as Record<string, string>)) {
    definition = definition.replaceAll(`\${${name}}`, value);
  }
  walk(definition);
  return found;
}

test.each([
  ['cn-north-1', 'aws-cn'],
  ['us-gov-west-1', 'aws-us-gov'],
])('every ARN the stack writes in %s is in its partition (%s), result buckets and service integrations included', (region, partition) => {
  const arns = arnsIn(region, partition);
  expect(arns.filter((arn) => arn.startsWith(`arn:${partition}:states:::`)).length).toBeGreaterThanOrEqual(5);
  expect(arns.filter((arn) => arn.includes(':s3:::seed-results')).length).toBeGreaterThan(4);
  expect(arns.filter((arn) => !arn.startsWith(`arn:${partition}:`))).toEqual([]);
});

/** The buckets a role may use `action` on (objects or the bucket itself), from its statements. */
function bucketsFor(statements: Statement[], action: string): string[] {
  const buckets = statements
    .filter((s) => s.Effect === 'Allow' && list(s.Action).includes(action))
    .flatMap((s) => list(s.Resource).map((r) => r.replace(/^arn:aws:s3:::/, '').replace(/\/\*$/, '')));
  return [...new Set(buckets)].sort();
}

test.each([
  ['', '', ''],
  ['survey-data', 'seed-results,survey-results', 'team-models,shared-models'],
])(
  'DataBucketName %j, ResultBucketNames %j, ModelBucketNames %j: the roles grant exactly the buckets the initializer validates payloads against',
  (dataBucket, resultBuckets, modelBuckets) => {
    const { resolve: deployed } = resolver(translated, ROOT, {
      overrides: { DataBucketName: dataBucket, ResultBucketNames: resultBuckets, ModelBucketNames: modelBuckets },
      accountId: ACCOUNT,
      stackName: STACK,
      stackUuid: STACK_UUID,
    });
    const statements = (role: string) =>
      (deployed(translated.Resources[role].Properties.Policies as never) as ({ PolicyDocument: { Statement: Statement[] } } | undefined)[])
        .filter((p) => p !== undefined)
        .flatMap((p) => p!.PolicyDocument.Statement);
    const environment = (
      deployed(translated.Resources.InitializerFunction.Properties.Environment as never) as { Variables: Record<string, string> }
    ).Variables;
    const readable = [environment.DATA_BUCKET];
    const writable = [environment.CONTROL_BUCKET, ...environment.RESULT_BUCKETS.split(',').filter(Boolean)].sort();
    expect(readable).toEqual([dataBucket || controlBucket]);
    // In the control bucket, partitions are read from its data/ folder alone (CONTROL_DATA_FOLDER).
    const dataObjects = dataBucket || `${controlBucket}/${CONTROL_DATA_FOLDER.slice(0, -1)}`;
    // What the inference function reads and writes, and what the initializer may list and write the manifest to.
    // A run's model: the control bucket's models/ folder (and no other key of it) or a model bucket.
    const models = [`${environment.CONTROL_BUCKET}/models`, ...environment.MODEL_BUCKETS.split(',').filter(Boolean)];
    expect(models.length).toBe(1 + (modelBuckets ? 2 : 0));
    expect(bucketsFor(statements('InferenceFunctionRole'), 's3:GetObject')).toEqual([dataObjects, ...models].sort());
    expect(bucketsFor(statements('InferenceFunctionRole'), 's3:ListBucket')).toEqual(
      [...environment.RESULT_BUCKETS.split(',').filter(Boolean), ...readable].sort(),
    );
    // The initializer reads the model's signature and card; the control bucket it reads whole (payloads).
    expect(bucketsFor(statements('InitializerFunctionRole'), 's3:GetObject')).toEqual(
      expect.arrayContaining([environment.CONTROL_BUCKET, ...models.slice(1)]),
    );
    expect(bucketsFor(statements('InferenceFunctionRole'), 's3:PutObject')).toEqual(writable);
    expect(bucketsFor(statements('InitializerFunctionRole'), 's3:PutObject')).toEqual(writable);
    expect(bucketsFor(statements('InitializerFunctionRole'), 's3:ListBucket')).toEqual([...new Set([...writable, ...readable])].sort());
  },
);

test('KmsKeyArn: every role that reads or writes the buckets may use the key, and none may without one', () => {
  const key = `arn:aws:kms:us-east-1:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
  const roles = ['InitializerFunctionRole', 'InferenceFunctionRole', 'SummarizerFunctionRole', 'CaiStateMachineRole'];
  const kmsGrants = (kmsKeyArn: string) => {
    const { resolve: deployed } = resolver(translated, ROOT, {
      overrides: { KmsKeyArn: kmsKeyArn },
      accountId: ACCOUNT,
      stackName: STACK,
      stackUuid: STACK_UUID,
    });
    return roles.map((role) =>
      (deployed(translated.Resources[role].Properties.Policies as never) as ({ PolicyDocument: { Statement: Statement[] } } | undefined)[])
        .filter((p) => p !== undefined)
        .flatMap((p) => p!.PolicyDocument.Statement)
        .filter((s) => list(s.Action).some((a) => a.startsWith('kms:')))
        .flatMap((s) => list(s.Action).map((a) => `${a} ${list(s.Resource).join(',')}`))
        .sort(),
    );
  };
  expect(kmsGrants(key)).toEqual(roles.map(() => [`kms:Decrypt ${key}`, `kms:GenerateDataKey ${key}`]));
  expect(kmsGrants('')).toEqual(roles.map(() => []));
});

test('no role grants "*" but for the actions AWS documents without a resource (log delivery, X-Ray, GetAccountSettings)', () => {
  const { resolve: deployed } = resolver(translated, ROOT, {
    overrides: { StateMachineTracing: 'Enabled', KmsKeyArn: 'arn:aws:kms:us-east-1:123456789012:key/k' },
    accountId: ACCOUNT,
    stackName: STACK,
    stackUuid: STACK_UUID,
  });
  const starred = Object.entries(translated.Resources)
    .filter(([, r]) => r.Type === 'AWS::IAM::Role')
    .flatMap(([role, r]) =>
      (deployed(r.Properties.Policies as never) as ({ PolicyDocument: { Statement: Statement[] } } | undefined)[])
        .filter((p) => p !== undefined)
        .flatMap((p) => p!.PolicyDocument.Statement)
        .filter((s) => list(s.Resource).includes('*'))
        .flatMap((s) => list(s.Action).map((a) => `${role} ${a}`)),
    );
  expect(starred.filter((g) => g.startsWith('InitializerFunctionRole'))).toEqual(['InitializerFunctionRole lambda:GetAccountSettings']);
  const allowed = [...LOG_DELIVERY, ...XRAY_WRITES, ...ACCOUNT_SETTINGS];
  expect(starred.filter((g) => !allowed.includes(g.split(' ')[1]))).toEqual([]);
});
