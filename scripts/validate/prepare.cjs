'use strict';
/**
 * Pure helpers of `scripts/validate-terraform.mjs`: turn a synthesized AWS stack into a directory the
 * offline mirror of the real provider can validate, write its `terraform test` files, and map a
 * diagnostic back to the construct path in the JSON metadata. No I/O here, so jest can test it.
 */

const FAKE_ACCOUNT = '123456789012';
const FAKE_REGION = 'us-east-1';

/**
 * Arguments the bindings (provider 6.x) may write that the 5.100 mirror does not know. The harness
 * drops them before validating, and counts each drop; the library keeps writing them.
 * Each entry: resource type ('*' for any), argument, and why it is safe to drop.
 */
const SIX_X_ONLY = [
  // 6.0 added a per-resource `region` to nearly every resource (enhanced region support); 5.x takes
  // the region from the provider only. https://registry.terraform.io/providers/hashicorp/aws/latest/docs/guides/enhanced-region-support
  { type: '*', argument: 'region', reason: 'provider 6.0 per-resource region; 5.x uses the provider region' },
];

/** Providers a stack may use and still be checked here (others have no mirror). */
const CHECKABLE_PROVIDERS = new Set(['aws', 'random']);

/** True when the stack's only cloud provider is AWS. */
function isAwsStack(json) {
  const providers = Object.keys(json?.terraform?.required_providers ?? {});
  return providers.includes('aws') && providers.every((p) => CHECKABLE_PROVIDERS.has(p));
}

function clone(value) {
  return JSON.parse(JSON.stringify(value));
}

/** Every string inside `value`, rewritten by `fn` (objects and arrays walked in place). */
function mapStrings(value, fn) {
  if (typeof value === 'string') return fn(value);
  if (Array.isArray(value)) return value.map((v) => mapStrings(v, fn));
  if (value && typeof value === 'object') {
    for (const k of Object.keys(value)) value[k] = mapStrings(value[k], fn);
    return value;
  }
  return value;
}

/** A value of the right shape for a `random_*` resource's attribute. */
function standInValue(type, config, attribute) {
  if (type === 'random_integer' && attribute === 'result') return Number(config.min ?? 0);
  if (type === 'random_uuid') return '00000000-0000-4000-8000-000000000000';
  const length = Number(config.length ?? config.byte_length ?? 16);
  return 'a'.repeat(Math.max(1, Math.min(length, 64)));
}

const RANDOM_REF = /\brandom_([a-z_]+)\.([A-Za-z0-9_-]+)\.([a-z_]+)/g;

/**
 * The stack ready for the mirror: aws pinned to `awsVersion`, no backend, no random provider
 * (the mirror has none; each `random_*` attribute read becomes a local of the same shape), and the
 * 6.x-only arguments dropped. Returns the JSON and what was changed, for the report.
 */
function prepareStack(input, { awsVersion }) {
  const json = clone(input);
  const tf = json.terraform ?? (json.terraform = {});
  delete tf.backend;
  tf.required_providers = { aws: { source: 'hashicorp/aws', version: awsVersion } };
  if (json.provider) delete json.provider.random;

  const standIns = [];
  const locals = {};
  const randomTypes = Object.keys(json.resource ?? {}).filter((t) => t.startsWith('random_'));
  const configs = {};
  for (const type of randomTypes) {
    for (const [name, config] of Object.entries(json.resource[type])) {
      configs[`${type}.${name}`] = config;
      standIns.push(`${type}.${name}`);
    }
    delete json.resource[type];
  }
  if (standIns.length) {
    mapStrings(json, (s) => s.replace(RANDOM_REF, (_m, kind, name, attr) => {
      const type = `random_${kind}`;
      const local = `mlinfra_standin_${type}_${name}_${attr}`.replace(/-/g, '_');
      locals[local] = standInValue(type, configs[`${type}.${name}`] ?? {}, attr);
      return `local.${local}`;
    }));
    // depends_on entries were rewritten to locals above; a local is not a valid dependency.
    for (const block of ['resource', 'data', 'module', 'output']) {
      for (const group of Object.values(json[block] ?? {})) {
        for (const item of Object.values(group ?? {})) {
          if (item && Array.isArray(item.depends_on)) {
            item.depends_on = item.depends_on.filter((d) => !/^(\$\{)?(local\.|random_)/.test(d));
            if (!item.depends_on.length) delete item.depends_on;
          }
        }
      }
    }
    json.locals = { ...(json.locals ?? {}), ...locals };
  }

  const dropped = [];
  for (const [type, group] of Object.entries(json.resource ?? {})) {
    for (const [name, config] of Object.entries(group)) {
      for (const rule of SIX_X_ONLY) {
        if ((rule.type === '*' || rule.type === type) && config && Object.prototype.hasOwnProperty.call(config, rule.argument)) {
          delete config[rule.argument];
          dropped.push({ address: `${type}.${name}`, argument: rule.argument, reason: rule.reason });
        }
      }
    }
  }
  return { json, standIns, dropped };
}

/** Fake credentials and skip flags: the real provider plans offline. */
function withOfflineProvider(json) {
  for (const p of json.provider?.aws ?? []) {
    Object.assign(p, {
      access_key: 'AKIAIOSFODNN7EXAMPLE', secret_key: 'mlinfra-validate-not-a-secret',
      skip_credentials_validation: true, skip_requesting_account_id: true, skip_metadata_api_check: true,
      skip_region_validation: true,
    });
  }
  return json;
}

/** An HCL value written from JSON (JSON strings are valid HCL strings once `${` and `%{` are escaped). */
function hcl(value, indent = '') {
  // Function replacements: in a replacement string `$$` is one `$`.
  if (typeof value === 'string') return JSON.stringify(value).replace(/\$\{/g, () => '$${').replace(/%\{/g, () => '%%{');
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value === null || value === undefined) return 'null';
  const next = `${indent}  `;
  if (Array.isArray(value)) return `[${value.map((v) => hcl(v, next)).join(', ')}]`;
  const entries = Object.entries(value);
  if (!entries.length) return '{}';
  return `{\n${entries.map(([k, v]) => `${next}${JSON.stringify(k)} = ${hcl(v, next)}`).join('\n')}\n${indent}}`;
}

const AZS = ['us-east-1a', 'us-east-1b', 'us-east-1c'];

/** What a data source that would call AWS returns, for `override_data` (or the mock's defaults). */
function dataValues(type, config, json, name) {
  switch (type) {
    case 'aws_caller_identity':
      return { account_id: FAKE_ACCOUNT, arn: `arn:aws:iam::${FAKE_ACCOUNT}:user/validate`, user_id: 'AIDAVALIDATE', id: FAKE_ACCOUNT };
    case 'aws_availability_zones':
      return { names: AZS, zone_ids: ['use1-az1', 'use1-az2', 'use1-az4'], id: FAKE_REGION };
    case 'aws_region':
      return { name: FAKE_REGION, id: FAKE_REGION, region: FAKE_REGION, description: 'US East (N. Virginia)', endpoint: 'ec2.us-east-1.amazonaws.com' };
    case 'aws_ssm_parameter':
      // The GPU AMI parameters hold an AMI id.
      return { value: 'ami-0123456789abcdef0', insecure_value: 'ami-0123456789abcdef0', type: 'String', version: 1, arn: `arn:aws:ssm:${FAKE_REGION}:${FAKE_ACCOUNT}:parameter/validate`, id: config.name ?? 'validate' };
    case 'aws_ami':
      return { id: 'ami-0123456789abcdef0', image_id: 'ami-0123456789abcdef0', arn: `arn:aws:ec2:${FAKE_REGION}::image/ami-0123456789abcdef0` };
    case 'aws_vpc':
      return { id: 'vpc-0123456789abcdef0', cidr_block: '10.0.0.0/16', arn: `arn:aws:ec2:${FAKE_REGION}:${FAKE_ACCOUNT}:vpc/vpc-0123456789abcdef0` };
    case 'aws_subnet':
      return { id: 'subnet-0123456789abcdef0', availability_zone: AZS[0], vpc_id: 'vpc-0123456789abcdef0', cidr_block: '10.0.0.0/24' };
    case 'aws_subnets':
      return { ids: ['subnet-0123456789abcdef0'] };
    case 'aws_secretsmanager_secret': {
      // Looked up by name (credentials the user created, e.g. ecr-pullthroughcache/<upstream>).
      const arn = `arn:aws:secretsmanager:${FAKE_REGION}:${FAKE_ACCOUNT}:secret:${config.name ?? 'validate'}-AbCdEf`;
      return { arn, id: arn, name: config.name ?? 'validate' };
    }
    case 'terraform_remote_state':
      return { outputs: remoteStateOutputs(json, name) };
    default:
      return undefined;
  }
}

/** The outputs of a remote state that the stack reads, each a string stand-in. */
function remoteStateOutputs(json, name) {
  const outputs = {};
  const re = new RegExp(`data\\.terraform_remote_state\\.${name.replace(/[-]/g, '\\-')}\\.outputs\\.([A-Za-z0-9_-]+)`, 'g');
  mapStrings(clone(json), (s) => {
    for (const m of s.matchAll(re)) outputs[m[1]] = `s3://mlinfra-validate-remote/${m[1]}`;
    return s;
  });
  return outputs;
}

/** Data sources that read nothing from AWS (computed by the provider itself): no override needed. */
const LOCAL_DATA = new Set(['aws_iam_policy_document', 'aws_partition']);

function dataSources(json) {
  const out = [];
  for (const [type, group] of Object.entries(json.data ?? {})) {
    for (const [name, config] of Object.entries(group)) out.push({ type, name, config });
  }
  return out;
}

function overrideBlocks(json, { includeLocal }) {
  const blocks = [];
  const missing = [];
  for (const { type, name, config } of dataSources(json)) {
    if (LOCAL_DATA.has(type) && !includeLocal) continue;
    const values = dataValues(type, config, json, name);
    if (!values) {
      if (!LOCAL_DATA.has(type)) missing.push(`data.${type}.${name}`);
      continue;
    }
    blocks.push(`override_data {\n  target = data.${type}.${name}\n  values = ${hcl(values, '  ')}\n}\n`);
  }
  return { text: blocks.join('\n'), missing };
}

/** Mode (a): the real provider with fake credentials plans the stack; data that would call AWS is overridden. */
function renderRealTest(json) {
  const { text, missing } = overrideBlocks(json, { includeLocal: false });
  return {
    text: `# Generated by scripts/validate-terraform.mjs: the real provider's plan-time checks, offline.\n${text}\nrun "plan" {\n  command = plan\n}\n`,
    missing,
  };
}

function serviceOf(type) {
  const m = /^aws_([a-z0-9]+)/.exec(type);
  const svc = m ? m[1] : 'mock';
  return { s3: 's3', iam: 'iam', lb: 'elasticloadbalancing', autoscaling: 'autoscaling', cloudwatch: 'cloudwatch', vpc: 'ec2', subnet: 'ec2', security: 'ec2', launch: 'ec2', placement: 'ec2', nat: 'ec2', eip: 'ec2', internet: 'ec2', route: 'ec2', scheduler: 'scheduler', secretsmanager: 'secretsmanager' }[svc] ?? svc;
}

/** An ARN the provider's ARN checks accept, for a mocked resource of `type`. */
function mockArn(type, attribute) {
  const service = serviceOf(type);
  const region = service === 'iam' || service === 's3' ? '' : FAKE_REGION;
  const account = service === 's3' ? '' : FAKE_ACCOUNT;
  const resource = service === 'iam' ? `role/mock-${type.slice(4)}` : `${type.slice(4)}/mock-${attribute}`;
  return `arn:aws:${service}:${region}:${account}:${resource}`;
}

/** Computed attributes whose value is an ARN, by resource type, from the provider schema. */
function arnAttributes(schemaBlock) {
  const out = [];
  for (const [name, attr] of Object.entries(schemaBlock?.attributes ?? {})) {
    if (attr.computed && attr.type === 'string' && (name === 'arn' || name.endsWith('_arn'))) out.push(name);
  }
  return out;
}

/** EC2 ids the provider checks by prefix. */
const ID_PREFIX = {
  aws_launch_template: 'lt', aws_security_group: 'sg', aws_subnet: 'subnet', aws_vpc: 'vpc', aws_eip: 'eipalloc',
  aws_nat_gateway: 'nat', aws_internet_gateway: 'igw', aws_route_table: 'rtb', aws_vpc_endpoint: 'vpce',
  aws_default_security_group: 'sg', aws_network_interface: 'eni', aws_instance: 'i',
};

/** Resource types whose `id` is their ARN (the provider sets id = arn). */
const ID_IS_ARN = new Set(['aws_sns_topic', 'aws_iam_policy', 'aws_lb', 'aws_lb_target_group', 'aws_lb_listener', 'aws_cloudwatch_event_rule']);

/**
 * Mode (b): every resource mocked with ARN-shaped computed values, planned then applied, so every
 * value is known when the provider's checks run. `alias` is the synthesized provider's alias.
 */
function renderMockTest(json, resourceSchemas) {
  const aliases = (json.provider?.aws ?? []).map((p) => p.alias).filter(Boolean);
  const types = Object.keys(json.resource ?? {}).filter((t) => t.startsWith('aws_')).sort();
  const mocks = [];
  for (const type of types) {
    const defaults = {};
    for (const attr of arnAttributes(resourceSchemas?.[type]?.block)) defaults[attr] = mockArn(type, attr);
    if (ID_IS_ARN.has(type)) defaults.id = mockArn(type, 'id');
    if (ID_PREFIX[type]) defaults.id = `${ID_PREFIX[type]}-0123456789abcdef0`;
    if (type === 'aws_kms_key') defaults.key_id = '0123abcd-0123-4abc-8def-0123456789ab';
    if (type === 'aws_sqs_queue') defaults.url = `https://sqs.${FAKE_REGION}.amazonaws.com/${FAKE_ACCOUNT}/mock`;
    // The image pre-warm function answers with the cache's registry id (what the SageMaker image URI reads).
    if (type === 'aws_lambda_invocation') defaults.result = JSON.stringify({ registryId: FAKE_ACCOUNT });
    if (Object.keys(defaults).length) mocks.push(`  mock_resource ${JSON.stringify(type)} {\n    defaults = ${hcl(defaults, '    ')}\n  }\n`);
  }
  const dataMocks = [
    `  mock_data "aws_iam_policy_document" {\n    defaults = { json = ${hcl('{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}')} }\n  }\n`,
    `  mock_data "aws_partition" {\n    defaults = { partition = "aws", dns_suffix = "amazonaws.com", id = "aws", reverse_dns_prefix = "com.amazonaws" }\n  }\n`,
  ];
  const providers = (aliases.length ? aliases : [undefined]).map((alias) =>
    `mock_provider "aws" {\n${alias ? `  alias = ${JSON.stringify(alias)}\n` : ''}${[...dataMocks, ...mocks].join('')}}\n`).join('\n');
  const { text, missing } = overrideBlocks(json, { includeLocal: false });
  return {
    text: `# Generated by scripts/validate-terraform.mjs: mocked provider, plan then apply (every value known).\n${providers}\n${text}\nrun "plan" {\n  command = plan\n}\n\nrun "apply" {\n  command = apply\n}\n`,
    missing,
  };
}

/**
 * The construct path of the block that holds line `line` (1-based) of `text`, a stack written with
 * JSON.stringify(json, null, 2): the block kind sits at indent 2, the type at 4, the name at 6.
 */
function constructPathAt(text, json, line) {
  const lines = text.split('\n');
  let name; let type; let kind;
  for (let i = Math.min(line, lines.length) - 1; i >= 0; i--) {
    const m = /^( *)"([^"]+)": [{[]/.exec(lines[i]);
    if (!m) continue;
    const depth = m[1].length;
    if (depth === 6 && name === undefined && type === undefined) name = m[2];
    else if (depth === 4 && type === undefined) type = m[2];
    else if (depth === 2) { kind = m[2]; break; }
  }
  if (!kind) return undefined;
  if (kind === 'resource' || kind === 'data') {
    return json?.[kind]?.[type]?.[name]?.['//']?.metadata?.path;
  }
  if (kind === 'output') return json?.output?.[type]?.['//']?.metadata?.path ?? `output.${type}`;
  return kind;
}

/** The construct path of a resource address such as `aws_s3_bucket.x` or `data.aws_iam_policy_document.y`. */
function constructPathOf(json, address) {
  if (!address) return undefined;
  const parts = address.replace(/\[.*?\]/g, '').split('.');
  const [kind, type, name] = parts[0] === 'data' ? ['data', parts[1], parts[2]] : ['resource', parts[0], parts[1]];
  return json?.[kind]?.[type]?.[name]?.['//']?.metadata?.path;
}

module.exports = {
  SIX_X_ONLY, isAwsStack, prepareStack, withOfflineProvider, renderRealTest, renderMockTest, constructPathAt,
  constructPathOf, hcl, mockArn,
};
