/** The validate:terraform harness's pure helpers: what it changes in a stack before the real provider sees it. */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const V = require('../../scripts/validate/prepare.cjs');

const stack = () => ({
  '//': { metadata: { stackName: 's' } },
  terraform: {
    backend: { local: { path: '../x.tfstate' } },
    required_providers: { aws: { source: 'aws', version: '6.25.0' }, random: { source: 'hashicorp/random', version: '3.7.2' } },
  },
  provider: { aws: [{ alias: 's_aws', region: 'us-east-1' }], random: [{ alias: 'mlinfra' }] },
  data: {
    aws_caller_identity: { id1: { provider: 'aws.s_aws' } },
    aws_iam_policy_document: { doc: { provider: 'aws.s_aws', statement: [] } },
    terraform_remote_state: { other: { backend: 'local', config: { path: 'x' } } },
  },
  resource: {
    random_password: { tok: { length: 48, special: false, '//': { metadata: { path: 's/c/tok' } } } },
    aws_secretsmanager_secret_version: {
      v: { secret_string: '${random_password.tok.result}', depends_on: ['random_password.tok'], '//': { metadata: { path: 's/c/secret' } } },
    },
    aws_s3_object: { o: { region: 'us-east-1', bucket: 'b', key: 'k', content: '${data.terraform_remote_state.other.outputs.uri}', '//': { metadata: { path: 's/c/object' } } } },
  },
});

describe('prepareStack', () => {
  const { json, standIns, dropped } = V.prepareStack(stack(), { awsVersion: '5.100.0' });

  test('pins aws to the mirror, drops the backend and the random provider', () => {
    expect(json.terraform.required_providers).toEqual({ aws: { source: 'hashicorp/aws', version: '5.100.0' } });
    expect(json.terraform.backend).toBeUndefined();
    expect(json.provider.random).toBeUndefined();
    expect(json.resource.random_password).toBeUndefined();
  });

  test('a random_* attribute becomes a local of the same shape; depends_on on it goes', () => {
    expect(standIns).toEqual(['random_password.tok']);
    const v = json.resource.aws_secretsmanager_secret_version.v;
    expect(v.secret_string).toBe('${local.mlinfra_standin_random_password_tok_result}');
    expect(json.locals.mlinfra_standin_random_password_tok_result).toHaveLength(48);
    expect(v.depends_on).toBeUndefined();
  });

  test('6.x-only arguments on the allow-list are dropped and reported with the reason', () => {
    expect(json.resource.aws_s3_object.o.region).toBeUndefined();
    expect(dropped).toEqual([{ address: 'aws_s3_object.o', argument: 'region', reason: expect.stringMatching(/6\.0/) }]);
    for (const rule of V.SIX_X_ONLY) expect(rule.reason.length).toBeGreaterThan(20);
  });

  test('only stacks whose providers the mirror has are checked', () => {
    expect(V.isAwsStack(stack())).toBe(true);
    expect(V.isAwsStack({ terraform: { required_providers: { aws: {}, google: {} } } })).toBe(false);
    expect(V.isAwsStack({ terraform: { required_providers: { kubernetes: {} } } })).toBe(false);
  });
});

describe('test files', () => {
  const { json } = V.prepareStack(stack(), { awsVersion: '5.100.0' });

  test('real mode: fake credentials and skip flags on the provider; overrides for data that would call AWS', () => {
    const p = V.withOfflineProvider(JSON.parse(JSON.stringify(json))).provider.aws[0];
    expect(p).toMatchObject({ skip_credentials_validation: true, skip_requesting_account_id: true, skip_metadata_api_check: true });
    const { text, missing } = V.renderRealTest(json);
    expect(missing).toEqual([]);
    expect(text).toContain('target = data.aws_caller_identity.id1');
    expect(text).toContain('target = data.terraform_remote_state.other');
    expect(text).toContain('"uri" = ');
    expect(text).not.toContain('aws_iam_policy_document');
    expect(text).toMatch(/command = plan/);
  });

  test('mock mode: the provider\'s alias, ARN-shaped computed values, plan then apply', () => {
    const schemas = { aws_s3_object: { block: { attributes: { arn: { type: 'string', computed: true }, key: { type: 'string', required: true } } } } };
    const { text } = V.renderMockTest(json, schemas);
    expect(text).toContain('mock_provider "aws" {\n  alias = "s_aws"');
    expect(text).toMatch(/mock_resource "aws_s3_object" \{\n\s+defaults = \{\n\s+"arn" = "arn:aws:s3:::s3_object\/mock-arn"/);
    expect(text.indexOf('command = plan')).toBeLessThan(text.indexOf('command = apply'));
  });

  test('HCL values escape template sequences', () => {
    expect(V.hcl('${x} %{y}')).toBe('"$${x} %%{y}"');
    expect(V.mockArn('aws_iam_role', 'arn')).toBe('arn:aws:iam::123456789012:role/mock-iam_role');
  });
});

describe('constructPathAt', () => {
  test('maps a line of the written stack to the construct path in its metadata', () => {
    const { json } = V.prepareStack(stack(), { awsVersion: '5.100.0' });
    const text = JSON.stringify(json, null, 2);
    const lines = text.split('\n');
    const line = lines.findIndex((l) => l.includes('"secret_string"')) + 1;
    expect(V.constructPathAt(text, json, line)).toBe('s/c/secret');
    expect(V.constructPathOf(json, 'aws_s3_object.o')).toBe('s/c/object');
    expect(V.constructPathOf(json, 'aws_s3_object.o[0]')).toBe('s/c/object');
  });
});
