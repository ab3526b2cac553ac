import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { parse as parseYaml, type Tags } from 'yaml';
import { checkEventPattern, type EventPattern } from './event-pattern';
import { CaiError } from '../functions/commons/errors';

/**
 * template.yaml as `sam build`, `sam deploy` and `sam local invoke` read it, for the local stack:
 * parameters (defaults, then samconfig.toml's parameter_overrides, then explicit overrides), and
 * each function's handler, memory, timeout, architecture and environment (Globals merged in,
 * intrinsic functions resolved; references to resources take the local stack's names).
 */
type Node = unknown;
type Json = Record<string, Node>;

// CloudFormation's short-form tags, read as their long forms ({"Ref": …}, {"Fn::Sub": …}).
const INTRINSICS = [
  'Ref',
  'Sub',
  'GetAtt',
  'If',
  'Equals',
  'Not',
  'And',
  'Or',
  'Join',
  'Select',
  'Split',
  'FindInMap',
  'Base64',
  'GetAZs',
  'ImportValue',
  'Condition',
];
const customTags: Tags = INTRINSICS.flatMap((name) => {
  const key = name === 'Ref' || name === 'Condition' ? name : `Fn::${name}`;
  const value = (v: unknown) => ({ [key]: name === 'GetAtt' && typeof v === 'string' ? v.split('.') : v });
  return (['scalar', 'seq', 'map'] as const).map((nodeClass) => ({
    tag: `!${name}`,
    collection: nodeClass === 'scalar' ? undefined : nodeClass,
    resolve: (v: unknown) => value(nodeClass === 'scalar' ? v : (v as { toJSON(): unknown }).toJSON()),
  })) as Tags;
});

export interface SamTemplate {
  Parameters?: Record<string, TemplateParameter>;
  Conditions?: Record<string, Node>;
  Globals?: { Function?: Json };
  Resources: Record<string, { Type: string; Properties?: Json; Metadata?: Json }>;
}

export function readTemplate(root: string): SamTemplate {
  return parseYaml(readFileSync(join(root, 'template.yaml'), 'utf8'), { customTags }) as SamTemplate;
}

/** "A=1 B=two" (SAM's --parameter-overrides form) → {A: "1", B: "two"}. */
export function parseParameterOverrides(text: string): Record<string, string> {
  return Object.fromEntries([...text.matchAll(/(\w+)=("[^"]*"|'[^']*'|\S+)/g)].map(([, k, v]) => [k, v.replace(/^["']|["']$/g, '')]));
}

/**
 * samconfig.toml's parameter_overrides for a command (global, then the command's own section). By
 * default those `sam deploy` passes, as `sam deploy --guided` saves its answers in the deploy
 * section: the artifact's ONNX Runtime binary and the local stack follow what is deployed.
 */
export function samConfigOverrides(root: string, command = 'deploy'): Record<string, string> {
  const config = parseToml(readFileSync(join(root, 'samconfig.toml'), 'utf8')) as Record<string, Record<string, Record<string, Json>>>;
  const sections = [config.default?.global?.parameters, config.default?.[command]?.parameters];
  return sections.reduce<Record<string, string>>(
    (all, s) => Object.assign(all, parseParameterOverrides(String(s?.parameter_overrides ?? ''))),
    {},
  );
}

export interface ResolveOptions {
  /** Parameter values over the template's defaults, under samconfig.toml's (the local stack's own defaults). */
  defaults?: Record<string, string>;
  /** Parameter values over the template's defaults and samconfig.toml's. */
  overrides?: Record<string, string>;
  /** What Ref / GetAtt of a resource means locally: logical id → name or ARN. */
  resources?: Record<string, string>;
  region?: string;
  accountId?: string;
  stackName?: string;
  /** AWS::Partition (aws unless a test deploys elsewhere: aws-cn, aws-us-gov). */
  partition?: string;
  /** The UUID that ends the stack's id (CloudFormation makes one per stack). */
  stackUuid?: string;
}

/** template.yaml (or its parameters) holds what the local stack cannot make, as CloudFormation would not. */
export class TemplateError extends CaiError {}

export interface TemplateParameter {
  Type?: string;
  Default?: unknown;
  AllowedValues?: unknown[];
  AllowedPattern?: string;
  MinValue?: number;
  MaxValue?: number;
  MinLength?: number;
  MaxLength?: number;
  ConstraintDescription?: string;
}

/**
 * A parameter's value against its constraints, as CloudFormation checks them before it creates
 * anything (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/parameters-section-structure.html):
 * a stack given a value outside them is not created, and neither is the local stack.
 */
export function parameterProblem(name: string, p: TemplateParameter, value: string): string | undefined {
  if (p.Type === 'Number') {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n)) return `Parameter '${name}' must be a number`;
    if (p.MinValue !== undefined && n < p.MinValue) return `Parameter '${name}' must be a number not less than ${p.MinValue}`;
    if (p.MaxValue !== undefined && n > p.MaxValue) return `Parameter '${name}' must be a number not greater than ${p.MaxValue}`;
  }
  if (p.AllowedValues && !p.AllowedValues.map(String).includes(value)) return `Parameter '${name}' must be one of AllowedValues`;
  // A pattern is matched against the whole value; a ConstraintDescription, when given, is what the refusal says.
  if (p.AllowedPattern !== undefined && !new RegExp(`^(?:${p.AllowedPattern})$`).test(value)) {
    return `Malformed input-Parameter ${name} ${p.ConstraintDescription ?? `must match pattern ${p.AllowedPattern}`}`;
  }
  if (p.MinLength !== undefined && value.length < p.MinLength) return `Parameter '${name}' must contain at least ${p.MinLength} characters`;
  if (p.MaxLength !== undefined && value.length > p.MaxLength) return `Parameter '${name}' must contain at most ${p.MaxLength} characters`;
  return undefined;
}

/** The local stack's stand-in for the UUID CloudFormation puts at the end of a stack's id. */
export const LOCAL_STACK_UUID = '00000000-0000-4000-8000-000000000000';

/** Resolves intrinsic functions as far as the local stack can. */
export function resolver(template: SamTemplate, root: string, options: ResolveOptions = {}) {
  const parameters: Record<string, string> = {};
  for (const [name, p] of Object.entries(template.Parameters ?? {})) if (p.Default !== undefined) parameters[name] = String(p.Default);
  Object.assign(parameters, options.defaults, samConfigOverrides(root), options.overrides);
  for (const [name, value] of Object.entries(parameters)) {
    const declared = template.Parameters?.[name];
    const problem = declared && parameterProblem(name, declared, value);
    if (problem) throw new TemplateError(`template.yaml: ${problem}`);
  }
  const region = options.region ?? 'us-east-1';
  const accountId = options.accountId ?? '000000000000';
  const stackName = options.stackName ?? 'cai';
  const partition = options.partition ?? 'aws';
  const pseudo: Record<string, string> = {
    'AWS::Region': region,
    'AWS::AccountId': accountId,
    'AWS::StackName': stackName,
    'AWS::StackId': `arn:${partition}:cloudformation:${region}:${accountId}:stack/${stackName}/${options.stackUuid ?? LOCAL_STACK_UUID}`,
    'AWS::Partition': partition,
    'AWS::URLSuffix': 'amazonaws.com',
  };
  const ref = (name: string): string | string[] => {
    if (name in pseudo) return pseudo[name];
    if (name in parameters)
      return template.Parameters?.[name]?.Type === 'CommaDelimitedList' ? parameters[name].split(',') : parameters[name];
    if (options.resources?.[name] !== undefined) return options.resources[name];
    if (name in template.Resources) return name;
    throw new TemplateError(`template.yaml: cannot resolve Ref ${name}`);
  };
  const condition = (name: string): boolean => Boolean(resolve(template.Conditions?.[name]));
  const resolve = (node: Node): Node => {
    if (Array.isArray(node)) return node.map(resolve);
    if (node === null || typeof node !== 'object') return node;
    const [key, arg] = Object.entries(node as Json)[0] ?? [];
    const args = arg as Node[];
    switch (Object.keys(node as Json).length === 1 ? key : undefined) {
      case 'Ref':
        return arg === 'AWS::NoValue' ? undefined : ref(String(arg));
      case 'Fn::Sub': {
        const [text, vars] = typeof arg === 'string' ? [arg, {}] : (args as [string, Json]);
        return text.replace(/\$\{([^}]+)\}/g, (_, name: string) =>
          String(name in vars ? resolve(vars[name]) : name.includes('.') ? resolve({ 'Fn::GetAtt': name.split('.') }) : ref(name)),
        );
      }
      case 'Fn::GetAtt': {
        const [id, attribute] = args as string[];
        return options.resources?.[`${id}.${attribute}`] ?? options.resources?.[id] ?? `${id}.${attribute}`;
      }
      case 'Fn::If':
        return resolve(condition(String(args[0])) ? args[1] : args[2]);
      case 'Fn::Equals': {
        // CloudFormation compares the values as text: a Number parameter's "0" equals the template's 0.
        const text = (v: Node) => (v !== null && typeof v === 'object' ? JSON.stringify(v) : String(v));
        return text(resolve(args[0])) === text(resolve(args[1]));
      }
      case 'Fn::Not':
        return !resolve(args[0]);
      case 'Fn::And':
        return args.every((a) => resolve(a));
      case 'Fn::Or':
        return args.some((a) => resolve(a));
      case 'Condition':
        return condition(String(arg));
      case 'Fn::Join':
        return (resolve(args[1]) as Node[]).join(String(args[0]));
      case 'Fn::Split':
        return String(resolve(args[1])).split(String(args[0]));
      case 'Fn::Select':
        return (resolve(args[1]) as Node[])[Number(resolve(args[0]))];
      default:
        return Object.fromEntries(Object.entries(node as Json).map(([k, v]) => [k, resolve(v)]));
    }
  };
  return { parameters, resolve };
}

/** One function as Lambda would configure it. */
export interface FunctionConfig {
  logicalId: string;
  handler: string;
  runtime: string;
  memoryMb: number;
  timeoutS: number;
  architecture: 'x86_64' | 'arm64';
  environment: Record<string, string>;
  /** ReservedConcurrentExecutions, as the template's conditions leave it; absent when none is reserved. */
  reservedConcurrency?: number;
}

export function functionConfig(root: string, logicalId: string, options: ResolveOptions = {}): FunctionConfig {
  const template = readTemplate(root);
  const resource = template.Resources[logicalId];
  if (resource?.Type !== 'AWS::Serverless::Function') {
    const known = Object.entries(template.Resources)
      .filter(([, r]) => r.Type === 'AWS::Serverless::Function')
      .map(([id]) => id);
    throw new TemplateError(`template.yaml has no function ${logicalId} (its functions: ${known.join(', ')})`);
  }
  const { resolve } = resolver(template, root, options);
  const globals = (template.Globals?.Function ?? {}) as Json;
  const own = resource.Properties ?? {};
  const pick = (key: string) => resolve(own[key] ?? globals[key]);
  const variables = (p: Json) => ((p.Environment as Json | undefined)?.Variables ?? {}) as Json;
  const environment = resolve({ ...variables(globals), ...variables(own) }) as Record<string, Node>;
  const architecture = ((pick('Architectures') as string[] | undefined) ?? ['x86_64'])[0];
  if (architecture !== 'x86_64' && architecture !== 'arm64') throw new TemplateError(`${logicalId}: unknown architecture ${architecture}`);
  const reserved = pick('ReservedConcurrentExecutions');
  return {
    logicalId,
    handler: String(pick('Handler')),
    runtime: String(pick('Runtime')),
    memoryMb: Number(pick('MemorySize') ?? 128),
    timeoutS: Number(pick('Timeout') ?? 3),
    architecture,
    environment: Object.fromEntries(Object.entries(environment).map(([k, v]) => [k, String(v)])),
    ...(reserved === undefined ? {} : { reservedConcurrency: Number(reserved) }),
  };
}

/** Function logical id → the name of its handler folder under functions/ and its build target. */
export const FUNCTIONS = {
  InitializerFunction: 'initializer',
  InferenceFunction: 'inference',
  SummarizerFunction: 'summarizer',
} as const;
export type FunctionId = keyof typeof FUNCTIONS;

/** A DynamoDB table as template.yaml declares it, as CreateTable's input: the local stack makes the same table. */
export function tableDefinition(root: string, logicalId: string): Record<string, unknown> {
  const resource = readTemplate(root).Resources[logicalId];
  if (resource?.Type !== 'AWS::DynamoDB::Table') throw new TemplateError(`template.yaml has no table ${logicalId}`);
  const { AttributeDefinitions, KeySchema, GlobalSecondaryIndexes, BillingMode } = resource.Properties ?? {};
  return { AttributeDefinitions, KeySchema, GlobalSecondaryIndexes, BillingMode };
}

/**
 * A state machine's definition as CloudFormation deploys it: its DefinitionSubstitutions resolved
 * (`values` over them: the local stack's own names) and put in place.
 */
export function deployedDefinition(
  root: string,
  logicalId: string,
  options: ResolveOptions = {},
  values: Record<string, string> = {},
): string {
  const template = readTemplate(root);
  const properties = template.Resources[logicalId]?.Properties ?? {};
  if (typeof properties.DefinitionUri !== 'string')
    throw new TemplateError(`template.yaml has no state machine ${logicalId} with a DefinitionUri`);
  const substitutions = {
    ...(resolver(template, root, options).resolve(properties.DefinitionSubstitutions ?? {}) as Record<string, string>),
    ...values,
  };
  let text = readFileSync(join(root, properties.DefinitionUri), 'utf8');
  for (const [name, value] of Object.entries(substitutions)) text = text.replaceAll(`\${${name}}`, String(value));
  return text;
}

/** A function's EventBridgeRule event source: the rule's pattern, resolved as deployed. */
export interface EventRule {
  functionId: FunctionId;
  event: string;
  pattern: EventPattern;
}

/** A bucket's notification to a function (NotificationConfiguration.LambdaConfigurations), as deployed. */
export interface BucketNotification {
  functionId: FunctionId;
  /** Where the template declares it: <bucket logical id>.LambdaConfigurations[<index>]. */
  event: string;
  bucket: string;
  events: string[];
  prefix: string;
  suffix: string;
}

/** The function a notification's `Function` names (!GetAtt <id>.Arn or !Ref <id>), by logical id. */
function notifiedFunction(target: Node, where: string): FunctionId {
  const node = (target ?? {}) as Json;
  const id = Array.isArray(node['Fn::GetAtt']) ? String(node['Fn::GetAtt'][0]) : String(node.Ref ?? '');
  if (!(id in FUNCTIONS))
    throw new TemplateError(`${where}.Function: the local stack can notify only its functions, not ${JSON.stringify(target)}`);
  return id as FunctionId;
}

/** What invokes each function (its EventBridge rules and bucket notifications), read from template.yaml. */
export function eventSources(root: string, options: ResolveOptions = {}): { rules: EventRule[]; notifications: BucketNotification[] } {
  const template = readTemplate(root);
  const { resolve } = resolver(template, root, options);
  const rules: EventRule[] = [];
  const notifications: BucketNotification[] = [];
  for (const functionId of Object.keys(FUNCTIONS) as FunctionId[]) {
    const events = (template.Resources[functionId]?.Properties?.Events ?? {}) as Record<string, { Type: string; Properties: Json }>;
    for (const [event, source] of Object.entries(events)) {
      const properties = resolve(source.Properties) as Json;
      if (source.Type === 'EventBridgeRule') {
        rules.push({ functionId, event, pattern: checkEventPattern(properties.Pattern, `${functionId}.Events.${event}.Pattern`) });
      } else throw new TemplateError(`${functionId}.Events.${event}: the local stack has no ${source.Type} event source`);
    }
  }
  for (const [bucketId, resource] of Object.entries(template.Resources)) {
    if (resource.Type !== 'AWS::S3::Bucket') continue;
    const configurations = ((resource.Properties?.NotificationConfiguration as Json | undefined)?.LambdaConfigurations ?? []) as Json[];
    for (const [index, configuration] of configurations.entries()) {
      const event = `${bucketId}.LambdaConfigurations[${index}]`;
      const properties = resolve(configuration) as Json;
      const filters = (((properties.Filter as Json | undefined)?.S3Key as Json | undefined)?.Rules ?? []) as {
        Name: string;
        Value: string;
      }[];
      const rule = (name: string) => filters.find((f) => f.Name.toLowerCase() === name)?.Value ?? '';
      notifications.push({
        functionId: notifiedFunction(configuration.Function, event),
        event,
        bucket: String(resolve({ Ref: bucketId })),
        events: [String(properties.Event)],
        prefix: rule('prefix'),
        suffix: rule('suffix'),
      });
    }
  }
  return { rules, notifications };
}

/** Whether a bucket notification fires for an event name (s3:ObjectCreated:* and the like) and key. */
export function notificationMatches(notification: BucketNotification, eventName: string, key: string): boolean {
  const name = `s3:${eventName}`;
  const kind = notification.events.some((e) => (e.endsWith(':*') ? name.startsWith(e.slice(0, -1)) : name === e));
  return kind && key.startsWith(notification.prefix) && key.endsWith(notification.suffix);
}
