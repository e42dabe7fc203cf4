/**
 * Promotion through SageMaker's blue/green deployment, against a recording fake of the SageMaker API
 * (test/support/fake-sagemaker.ts): the exact calls, the pointer moved only when the new config serves,
 * unchanged after a rollback, a failed update or a refused one, and a retried rollout reusing its model.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SageMakerClient } from '@aws-sdk/client-sagemaker';
import { ModelRegistry, RegistryError } from '../../src/runtime-agent/registry/registry';
import { rolloutSageMaker, versionedName, type SageMakerRolloutConfig } from '../../src/runtime-agent/registry/rollout-sagemaker';
import { Storage } from '../../src/runtime-agent/storage/index';
import { startFakeSageMaker, type FakeSageMaker } from '../support/fake-sagemaker';

let dir: string;
let fake: FakeSageMaker;
let client: SageMakerClient;
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mlinfra-rollout-'));
  fake = await startFakeSageMaker({ 'ltv-api': 'ltv-api-initial' });
  client = new SageMakerClient({ endpoint: fake.url, region: 'us-east-1', credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'test' }, maxAttempts: 1 });
});
afterAll(async () => {
  await fake.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const cfg: SageMakerRolloutConfig = {
  endpointName: 'ltv-api', image: '123456789012.dkr.ecr.us-east-1.amazonaws.com/ghcr/acme/ltv-server:2.0',
  executionRoleArn: 'arn:aws:iam::123456789012:role/ltv-api-exec', variantName: 'AllTraffic', instanceType: 'ml.g6.xlarge',
  initialInstanceCount: 1, environment: { SAGEMAKER_BIND_TO_PORT: '8080' }, kmsKeyArn: 'arn:aws:kms:us-east-1:123456789012:key/k1',
  traffic: { type: 'CANARY', percent: 10, waitSeconds: 600 }, rollbackAlarms: ['ltv-api-errors', 'ltv-api-p99'], pollSeconds: 0,
};
const deps = { client: () => client, sleep: async () => undefined };

async function registryWithTwo(): Promise<ModelRegistry> {
  const reg = new ModelRegistry(new Storage(), `file://${fs.mkdtempSync(path.join(dir, 'art-'))}`, 'ltv');
  for (const run of ['r1', 'r2']) {
    const m = fs.mkdtempSync(path.join(dir, 'model-'));
    fs.writeFileSync(path.join(m, 'model.pt'), run);
    await reg.register({ runId: run, modelDir: m });
  }
  return reg;
}
const rollout = (v: Parameters<typeof rolloutSageMaker>[1]) => rolloutSageMaker(cfg, v, { client: deps.client(), sleep: deps.sleep });

test('names keep the version at the end within 63 characters', () => {
  expect(versionedName('ltv-api', 'v12')).toBe('ltv-api-v12');
  const long = versionedName('a'.repeat(70), 'v3');
  expect(long).toHaveLength(63);
  expect(long.endsWith('-v3')).toBe(true);
});

test('a promotion creates the version\'s model and config, updates with canary + alarms, and moves the pointer when it serves', async () => {
  const reg = await registryWithTwo();
  fake.calls.length = 0;
  fake.outcome = 'succeed';
  await reg.promote('v1', { rollout });
  const v1 = await reg.show('v1');
  expect(fake.calls.map((c) => c.op)).toEqual(['DescribeEndpoint', 'CreateModel', 'CreateEndpointConfig', 'UpdateEndpoint', 'DescribeEndpoint', 'DescribeEndpoint']);
  expect(fake.calls[1].body).toEqual({
    ModelName: 'ltv-api-v1', ExecutionRoleArn: cfg.executionRoleArn,
    PrimaryContainer: {
      Image: cfg.image, Mode: 'SingleModel',
      ModelDataSource: { S3DataSource: { S3Uri: v1.modelUri, S3DataType: 'S3Prefix', CompressionType: 'None' } },
      Environment: { SAGEMAKER_BIND_TO_PORT: '8080', MLINFRA_MODEL_VERSION: 'v1' },
    },
    Tags: [{ Key: 'mlinfra:model-version', Value: 'v1' }],
  });
  expect(fake.calls[2].body).toEqual({
    EndpointConfigName: 'ltv-api-v1', KmsKeyId: cfg.kmsKeyArn,
    ProductionVariants: [{ VariantName: 'AllTraffic', ModelName: 'ltv-api-v1', InstanceType: 'ml.g6.xlarge', InitialInstanceCount: 1 }],
  });
  expect(fake.calls[3].body).toEqual({
    EndpointName: 'ltv-api', EndpointConfigName: 'ltv-api-v1',
    DeploymentConfig: {
      BlueGreenUpdatePolicy: {
        TrafficRoutingConfiguration: { Type: 'CANARY', CanarySize: { Type: 'CAPACITY_PERCENT', Value: 10 }, WaitIntervalInSeconds: 600 },
        TerminationWaitInSeconds: 300,
      },
      AutoRollbackConfiguration: { Alarms: [{ AlarmName: 'ltv-api-errors' }, { AlarmName: 'ltv-api-p99' }] },
    },
  });
  expect(fake.endpoint('ltv-api')).toEqual({ config: 'ltv-api-v1', status: 'InService' });
  expect((await reg.state()).current).toBe('v1');
});

test('a version\'s config keeps the endpoint\'s data capture and GPU startup timeouts (else capture stops at the first rollout)', async () => {
  const reg = await registryWithTwo();
  await reg.promote('v1', { rollout: async () => undefined });
  fake.calls.length = 0;
  fake.outcome = 'succeed';
  const capture = { samplingPercent: 20, destinationS3Uri: 's3://ltv-capture/ltv-api/', kmsKeyId: 'arn:aws:kms:us-east-1:123456789012:key/k1' };
  await reg.promote('v2', { rollout: (v) => rolloutSageMaker({ ...cfg, dataCapture: capture, startupTimeoutSeconds: 1800 }, v, { client: deps.client(), sleep: deps.sleep }) });
  const create = fake.calls.find((c) => c.op === 'CreateEndpointConfig')!;
  expect(create.body).toEqual({
    EndpointConfigName: 'ltv-api-v2', KmsKeyId: cfg.kmsKeyArn,
    ProductionVariants: [{
      VariantName: 'AllTraffic', ModelName: 'ltv-api-v2', InstanceType: 'ml.g6.xlarge', InitialInstanceCount: 1,
      ContainerStartupHealthCheckTimeoutInSeconds: 1800, ModelDataDownloadTimeoutInSeconds: 1800,
    }],
    DataCaptureConfig: {
      EnableCapture: true, InitialSamplingPercentage: 20, DestinationS3Uri: capture.destinationS3Uri, KmsKeyId: capture.kmsKeyId,
      CaptureOptions: [{ CaptureMode: 'Input' }, { CaptureMode: 'Output' }],
      CaptureContentTypeHeader: { JsonContentTypes: ['application/json'] },
    },
  });
  expect((await reg.state()).current).toBe('v2');
  // later tests start from v1 serving
  await reg.promote('v1', { rollout });
});

test.each([
  ['a rollback alarm fires', 'rollback', undefined, /rolled ltv-api back to ltv-api-v1/],
  ['the new fleet fails its health check', 'fail', undefined, /did not pass the ping health check/],
  ['SageMaker refuses the update', 'succeed', 'The account-level service limit for ml.g6.xlarge is 0 Instances', /service limit/],
] as const)('fails with the pointer unchanged when %s', async (_why, outcome, refusal, message) => {
  const reg = await registryWithTwo();
  await reg.promote('v1', { rollout: async () => undefined }); // v1 serves (the endpoint already runs ltv-api-v1 from the test above)
  fake.outcome = outcome;
  fake.refuseNextUpdate = refusal;
  let err: RegistryError | undefined;
  try {
    await reg.promote('v2', { rollout });
  } catch (e) {
    err = e as RegistryError;
  }
  expect(err?.code).toBe('rollout_failed');
  expect(err?.message).toMatch(message);
  expect(err?.message).toContain('v1 still serves');
  const s = await reg.state();
  expect(s.current).toBe('v1');
  expect(s.pending).toBeUndefined();
  expect(fake.endpoint('ltv-api')).toEqual({ config: 'ltv-api-v1', status: 'InService' });
});

test('a retried rollout reuses the version\'s model and config (they already exist)', async () => {
  const reg = await registryWithTwo();
  await reg.promote('v1', { rollout: async () => undefined });
  fake.outcome = 'succeed';
  fake.calls.length = 0;
  await reg.promote('v2', { rollout });
  expect(fake.calls.filter((c) => c.op === 'UpdateEndpoint')).toHaveLength(1);
  expect(fake.endpoint('ltv-api')?.config).toBe('ltv-api-v2');
  expect((await reg.state()).current).toBe('v2');
});

test('`models promote` rolls out to every endpoint registered under models/endpoints/ before moving the pointer', async () => {
  const reg = await registryWithTwo();
  await reg.promote('v2', { rollout: async () => undefined }); // the endpoint serves ltv-api-v2 since the test above
  const m = fs.mkdtempSync(path.join(dir, 'model-'));
  fs.writeFileSync(path.join(m, 'model.pt'), 'r3');
  await reg.register({ runId: 'r3', modelDir: m });
  // What the endpoint construct writes beside the registry.
  await new Storage().writeIf(`${reg.artifactsUri}/models/endpoints/ltv-api.json`, JSON.stringify({ kind: 'sagemaker', name: 'ltv-api', region: 'us-east-1', ...cfg }), null);
  const saved = { ...process.env };
  Object.assign(process.env, { AWS_ENDPOINT_URL_SAGEMAKER: fake.url, AWS_ACCESS_KEY_ID: 'AKIDTEST', AWS_SECRET_ACCESS_KEY: 'test', AWS_MAX_ATTEMPTS: '1' });
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { buildCli } = require('../../src/runtime-agent/cli') as typeof import('../../src/runtime-agent/cli');
  const { PassThrough } = await import('node:stream');
  const run = async (args: string[]) => {
    const out = new PassThrough();
    const err = new PassThrough();
    let text = '';
    let code = -1;
    out.on('data', (d: Buffer) => { text += d.toString(); });
    err.on('data', (d: Buffer) => { text += d.toString(); });
    await buildCli({ env: {}, stdout: out, stderr: err, exit: (c) => { code = c; } }).parseAsync(['node', 'mlinfra-agent', 'models', ...args, '--artifacts', reg.artifactsUri]);
    return { code, text };
  };
  try {
    fake.outcome = 'succeed';
    fake.refuseNextUpdate = 'Cannot update in-progress endpoint';
    const refused = await run(['promote', 'v3']);
    expect(refused.code).toBe(1);
    expect(JSON.parse(refused.text).error.code).toBe('rollout_failed');
    expect((await reg.state()).current).toBe('v2');
    fake.calls.length = 0;
    const ok = await run(['promote', 'v3']);
    expect(ok.code).toBe(0);
    expect(fake.calls.find((c) => c.op === 'UpdateEndpoint')?.body.EndpointConfigName).toBe('ltv-api-v3');
    expect((await reg.state()).current).toBe('v3');
    const back = await run(['rollback']);
    expect(back.code).toBe(0);
    expect(fake.endpoint('ltv-api')?.config).toBe('ltv-api-v2');
    expect((await reg.state()).current).toBe('v2');
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
});
