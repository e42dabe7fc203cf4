import { execFileSync } from 'child_process';
import { createHash } from 'crypto';
import { join } from 'path';
import { App, TerraformStack } from 'cdktf';
import {
  canonicalJson, PIPELINE_NAME, PipelineSpecError, specHash, specId, STEP_NAME, validatePipelineSpec,
} from '../../src/contracts/pipeline-spec';
import * as agentSpec from '../../src/runtime-agent/pipeline-spec';
import { GpuCluster } from '../../src/constructs/gpu-cluster';
import { Step, TrainingPipeline } from '../../src/constructs/training-pipeline';
import { MlInfraError } from '../../src/core/errors';
import { KubernetesTarget } from '../../src/core/targets';

const root = join(__dirname, '..', '..');
const run = (name: string, extra: Record<string, unknown> = {}) => ({ kind: 'run', name, argv: ['true'], ...extra });
const spec = (steps: unknown[], extra: Record<string, unknown> = {}) => ({ version: 1, name: 'churn', artifactsUri: 'file:///tmp/a', steps, ...extra });

/** Each case: what is wrong, the spec, the message run-pipeline reports, the steps and the field it names. */
const cases: [string, unknown, string, string[], string][] = [
  ['the spec is an array', [], 'the spec must be a JSON object', [], 'spec'],
  ['the name is one letter (GCP service accounts need 6 characters with -sch)', spec([run('a')], { name: 'p' }), 'name must match ^[a-z][a-z0-9-]{0,38}[a-z0-9]$, got "p"', [], 'name'],
  ['the name ends with a dash', spec([run('a')], { name: 'churn-' }), 'name must match ^[a-z][a-z0-9-]{0,38}[a-z0-9]$, got "churn-"', [], 'name'],
  ['artifactsUri is missing', { version: 1, name: 'churn', steps: [run('a')] }, 'artifactsUri must be a file://, s3:// or gs:// URI', [], 'artifactsUri'],
  ['a param is an object', spec([run('a')], { params: { lr: { x: 1 } } }), 'params.lr must be a string, number or boolean', [], 'params.lr'],
  ['autostop is a string', spec([run('a')], { autostop: 'yes' }), 'autostop must be a boolean', [], 'autostop'],
  ['there are no steps', spec([]), 'steps must be a non-empty array', [], 'steps'],
  ['a step name has upper case', spec([run('Train')]), 'steps[0].name must match ^[a-z][a-z0-9_-]{0,62}$, got "Train"', [], 'steps[0].name'],
  ['a step kind is unknown', spec([run('a'), { name: 'b', kind: 'deploy' }]), 'step "b": kind must be "run" or "deployIfBetter", got "deploy"', ['b'], 'steps[1].kind'],
  ['argv is empty', spec([run('a', { argv: [] })]), 'step "a": argv must be a non-empty array of strings', ['a'], 'steps[0].argv'],
  ['argv is missing', spec([{ kind: 'run', name: 'a' }]), 'step "a": argv must be a non-empty array of strings', ['a'], 'steps[0].argv'],
  ['an env name has a dash', spec([run('a', { env: { 'MY-VAR': 'x' } })]), 'step "a": env.MY-VAR must be a string with a valid name', ['a'], 'steps[0].env.MY-VAR'],
  ['an env value is a number', spec([run('a', { env: { N: 1 } })]), 'step "a": env.N must be a string with a valid name', ['a'], 'steps[0].env.N'],
  ['retries is negative', spec([run('a', { retries: -1 })]), 'step "a": retries must be an integer 0..100', ['a'], 'steps[0].retries'],
  ['gpus is fractional', spec([run('a', { gpus: 1.5 })]), 'step "a": gpus must be an integer 0..1024', ['a'], 'steps[0].gpus'],
  ['nodes is 0', spec([run('a', { nodes: 0 })]), 'step "a": nodes must be an integer 1..256', ['a'], 'steps[0].nodes'],
  ['gpusPerNode is fractional', spec([run('a', { nodes: 2, gpusPerNode: 0.5 })]), 'step "a": gpusPerNode must be an integer 0..64', ['a'], 'steps[0].gpusPerNode'],
  ['timeoutSeconds is 0', spec([run('a', { timeoutSeconds: 0 })]), 'step "a": timeoutSeconds must be a number > 0', ['a'], 'steps[0].timeoutSeconds'],
  ['onOom has no http URL', spec([run('a', { onOom: { agentUrl: 'ftp://x' } })]), 'step "a": onOom.agentUrl must be an http(s) URL', ['a'], 'steps[0].onOom.agentUrl'],
  ['onOom.tokenFile is a number', spec([run('a', { onOom: { agentUrl: 'http://x', tokenFile: 1 } })]), 'step "a": onOom.tokenFile must be a string', ['a'], 'steps[0].onOom.tokenFile'],
  ['a promote step has no metric', spec([run('a'), { kind: 'deployIfBetter', name: 'p', after: ['a'], metric: '', higherIsBetter: true }]), 'step "p": metric must be a non-empty string', ['p'], 'steps[1].metric'],
  ['after names are not strings', spec([run('a', { after: [1] })]), 'step "a": after must be an array of step names', ['a'], 'steps[0].after'],
  ['two steps share a name', spec([run('a'), run('a')]), 'duplicate step name "a"', ['a'], 'steps[1].name'],
  ['a step runs after an unknown one', spec([run('a', { after: ['b'] })]), 'step "a" runs after unknown step "b"', ['a', 'b'], 'steps[0].after'],
  ['the steps form a cycle', spec([run('a', { after: ['b'] }), run('b', { after: ['a'] })]), 'steps form a dependency cycle: a -> b -> a ("x -> y": x runs after y)', ['a', 'b'], 'steps'],
];

/** What the validator reports for a spec: the error's JSON, or the spec it accepted. */
function outcome(raw: unknown): unknown {
  try {
    return { accepted: validatePipelineSpec(raw) };
  } catch (e) {
    return e instanceof PipelineSpecError ? e.toJSON() : { thrown: String(e) };
  }
}

describe('the pipeline spec contract', () => {
  test.each(cases)('fails when %s', (_what, raw, message, steps, field) => {
    expect(outcome(raw)).toEqual({ error: { code: 'invalid_spec', message, steps, field } });
  });

  test('the agent\'s ajv (8, as bundled) reports exactly what this one (the repository\'s) reports', () => {
    // A child process whose `ajv` is the copy the agent bundle uses (scripts/build-agent.mjs: one-ajv).
    const script = `
      const Module = require('module');
      const ajv8 = require.resolve('ajv', { paths: [require('path').dirname(require.resolve('@fastify/ajv-compiler'))] });
      const resolve = Module._resolveFilename;
      Module._resolveFilename = function (request, ...rest) { return request === 'ajv' ? ajv8 : resolve.call(this, request, ...rest); };
      require('./test/support/ts-register.js');
      const c = require('./src/contracts/pipeline-spec.ts');
      const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));
      const out = cases.map((raw) => { try { return { accepted: c.validatePipelineSpec(raw) }; } catch (e) { return e.toJSON ? e.toJSON() : { thrown: String(e) }; } });
      process.stdout.write(JSON.stringify({ version: require(ajv8.slice(0, ajv8.lastIndexOf('node_modules/ajv/') + 17) + 'package.json').version, out }));`;
    const res = JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: root, input: JSON.stringify(cases.map((c) => c[1])), encoding: 'utf8' }));
    expect(res.version).toMatch(/^8\./);
    expect(res.out).toEqual(cases.map((c) => outcome(c[1])));
  });

  test('a valid spec comes back with defaults filled in, duplicates in after removed', () => {
    expect(validatePipelineSpec(spec([run('a'), run('b', { after: ['a', 'a'], env: { X: '1' }, timeoutSeconds: 60 }), { kind: 'deployIfBetter', name: 'promote', after: ['b'], metric: 'auc', higherIsBetter: true }]))).toEqual({
      version: 1, name: 'churn', artifactsUri: 'file:///tmp/a', params: {}, autostop: false,
      steps: [
        { kind: 'run', name: 'a', argv: ['true'], env: {}, after: [], retries: 0, gpus: 0 },
        { kind: 'run', name: 'b', argv: ['true'], env: { X: '1' }, after: ['a'], retries: 0, gpus: 0, timeoutSeconds: 60 },
        { kind: 'deployIfBetter', name: 'promote', after: ['b'], metric: 'auc', higherIsBetter: true },
      ],
    });
  });

  test('the agent adds only its storage check: a scheme it cannot read is refused', () => {
    expect(agentSpec.validatePipelineSpec(spec([run('a')], { artifactsUri: 's3://b/p' })).artifactsUri).toBe('s3://b/p');
    expect(() => agentSpec.validatePipelineSpec(spec([run('a')], { artifactsUri: 'ftp://x/y' }))).toThrow(/artifactsUri: unsupported storage URI "ftp:\/\/x\/y"/);
    // One module, one set of rules: the agent re-exports the contract's.
    expect(agentSpec.PIPELINE_NAME).toBe(PIPELINE_NAME);
    expect(agentSpec.STEP_NAME).toBe(STEP_NAME);
    expect(agentSpec.specHash).toBe(specHash);
  });

  test('the construct refuses the names the agent refuses, and the agent accepts what the construct stores', () => {
    const stack = new TerraformStack(new App(), 's');
    const target = new KubernetesTarget(stack, 'k8s', { namespace: 'ml' });
    const cluster = new GpuCluster(stack, 'train', { target, accelerator: 'L4', acceleratorsPerNode: 1, nodes: { min: 0, max: 1 } });
    const attempt = (name: string, step: string) => {
      try {
        return new TrainingPipeline(stack, `p-${name}-${step}`, { cluster, name, steps: [Step.run(step, ['python', 'train.py'])] });
      } catch (e) {
        return e as MlInfraError;
      }
    };
    expect(attempt('p', 'train')).toMatchObject({ code: 'INVALID_PROP', prop: 'name' });
    expect(attempt('pp', 'Train')).toBeInstanceOf(MlInfraError);
    const ok = attempt('churn', 'train_a') as TrainingPipeline;
    expect(ok).toBeInstanceOf(TrainingPipeline);
    const stored = JSON.parse(canonicalJson(ok.spec));
    expect(validatePipelineSpec(stored)).toEqual(stored);
    expect(ok.specId).toMatch(/^[0-9a-f]{16}$/);
  });

  test('a multi-node step is stored with nodes and gpusPerNode and validated against its cluster at synth', () => {
    const stack = new TerraformStack(new App(), 's');
    // multi-node steps need an object store on Kubernetes (a file:// volume is one node's)
    const target = new KubernetesTarget(stack, 'k8s', { namespace: 'ml', artifactStore: { uri: 's3://acme-ml' } });
    const cluster = new GpuCluster(stack, 'train', { target, accelerator: 'L4', acceleratorsPerNode: 4, nodes: { min: 0, max: 3 } });
    let i = 0;
    const pipeline = (step: ReturnType<typeof Step.run>) => {
      try {
        return new TrainingPipeline(stack, `p${++i}`, { cluster, name: `churn${i}`, steps: [step] });
      } catch (e) {
        return e as MlInfraError;
      }
    };
    const ok = pipeline(Step.run('train', ['python3', 'train.py'], { nodes: 2, gpusPerNode: 2 })) as TrainingPipeline;
    expect(ok.spec.steps[0]).toMatchObject({ kind: 'run', nodes: 2, gpusPerNode: 2, gpus: 2 });
    const stored = JSON.parse(canonicalJson(ok.spec));
    expect(validatePipelineSpec(stored)).toEqual(stored);
    // every accelerator of the node by default; a one-node step stores neither field (specs of existing pipelines stay byte-identical)
    expect((pipeline(Step.run('train', ['python3', 'train.py'], { nodes: 3 })) as TrainingPipeline).spec.steps[0]).toMatchObject({ nodes: 3, gpusPerNode: 4, gpus: 4 });
    const single = (pipeline(Step.run('train', ['python3', 'train.py'], { gpus: 2 })) as TrainingPipeline).spec.steps[0];
    expect(Object.keys(single)).not.toContain('nodes');
    expect(Object.keys(single)).not.toContain('gpusPerNode');
    const tooMany = pipeline(Step.run('train', ['x'], { nodes: 4 }));
    expect(tooMany).toMatchObject({ code: 'OUT_OF_RANGE', prop: 'steps[0].nodes', value: 4 });
    expect((tooMany as MlInfraError).message).toMatch(/at most 3 .*nodes\.max 3/);
    expect(pipeline(Step.run('train', ['x'], { nodes: 2, gpusPerNode: 5 }))).toMatchObject({ code: 'OUT_OF_RANGE', prop: 'steps[0].gpusPerNode', value: 5 });
    expect(pipeline(Step.run('train', ['x'], { nodes: 0 }))).toMatchObject({ code: 'OUT_OF_RANGE', prop: 'steps[0].nodes' });
    expect(pipeline(Step.run('train', ['x'], { nodes: 1.5 }))).toMatchObject({ code: 'OUT_OF_RANGE', prop: 'steps[0].nodes' });
    expect(pipeline(Step.run('train', ['x'], { nodes: 2, gpus: 1 }))).toMatchObject({ code: 'CONFLICTING_PROPS', prop: 'steps[0].gpus' });
    expect(pipeline(Step.run('train', ['x'], { gpusPerNode: 1 }))).toMatchObject({ code: 'CONFLICTING_PROPS', prop: 'steps[0].gpusPerNode' });
    const big = new GpuCluster(stack, 'big', { target, accelerator: 'L4', acceleratorsPerNode: 8, nodes: { min: 0, max: 1 } });
    expect(pipeline(Step.run('train', ['x'], { nodes: 2, onOom: big }))).toMatchObject({ code: 'CONFLICTING_PROPS', prop: 'steps[0].onOom' });
  });

  test('two hashes, two names: specHash hashes a spec\'s canonical JSON, specId the stored text', () => {
    const a = { b: 1, a: [2, { d: 3, c: 4 }] };
    expect(canonicalJson(a)).toBe('{"a":[2,{"c":4,"d":3}],"b":1}');
    expect(canonicalJson({ x: undefined, y: 1 })).toBe('{"y":1}');
    expect(specHash(a)).toBe(createHash('sha256').update('{"a":[2,{"c":4,"d":3}],"b":1}').digest('hex'));
    expect(specHash({ b: 1, a: [2, { c: 4, d: 3 }] })).toBe(specHash(a));
    expect(specId('{"a":1}')).toBe(createHash('sha256').update('{"a":1}').digest('hex').slice(0, 16));
    // Same function of different texts: the stored one keeps Terraform references as ${...}; the agent
    // hashes the spec it read, references resolved. Without references they agree on the first 16 digits.
    expect(specId(canonicalJson(a))).toBe(specHash(a).slice(0, 16));
  });

  test('importing the contract does not load the schema library; the first validation does', () => {
    const script = `
      require('./test/support/ts-register.js');
      const c = require('./src/contracts/pipeline-spec.ts');
      const loaded = () => Object.keys(require.cache).some((f) => /[\\\\/]node_modules[\\\\/]ajv[\\\\/]/.test(f));
      const before = loaded();
      c.validatePipelineSpec({ version: 1, name: 'churn', artifactsUri: '/tmp/a', steps: [{ kind: 'run', name: 'a', argv: ['x'] }] });
      process.stdout.write(JSON.stringify({ before, after: loaded() }));`;
    expect(JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8' }))).toEqual({ before: false, after: true });
  });
});
