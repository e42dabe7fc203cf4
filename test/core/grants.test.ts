// Stable grants: ids from the owner, the kind and the grantee; repeats are idempotent; each grant is a
// record in the owner's metadata; a grant across clouds is one error.
import { TerraformStack } from 'cdktf';
import { AwsTarget, Duration, FeatureStore, GcpTarget, GpuCluster, IGrantable, ModelEndpoint } from '../../src';
import { grantFacts } from '../../src/core/facts';
import { granteeKey } from '../../src/core/grants';
import { caught, resources, synth, testAgentBundle } from '../helpers';

const BUNDLE = testAgentBundle();
const world = (stack: TerraformStack) => {
  const aws = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
  const cluster = (id: string) => new GpuCluster(stack, id, { target: aws, accelerator: 'T4', agentBundleDir: BUNDLE });
  return { aws, train: cluster('train'), ops: cluster('ops'), big: cluster('big') };
};

describe('grants', () => {
  test('reordering two grant calls gives byte-identical JSON', () => {
    const a = synth((stack) => {
      const w = world(stack);
      w.train.grantArtifactsRead(w.ops);
      w.big.grantAgentAccess(w.ops);
      w.train.grantScale(w.big);
    });
    const b = synth((stack) => {
      const w = world(stack);
      w.train.grantScale(w.big);
      w.big.grantAgentAccess(w.ops);
      w.train.grantArtifactsRead(w.ops);
    });
    expect(b.text).toBe(a.text);
    // Three grants, three policies, each named by owner, kind and a hash of the grantee's path.
    const names = Object.values(resources(a.json, 'aws_iam_role_policy')).map((p) => p.name as string).filter((n) => /-(agent|artifacts-read|scale)-/.test(n)).sort();
    expect(names).toEqual([
      expect.stringMatching(/^test-big-[0-9a-f]{8}-agent-[0-9a-f]{8}$/),
      expect.stringMatching(/^test-train-[0-9a-f]{8}-artifacts-read-[0-9a-f]{8}$/),
      expect.stringMatching(/^test-train-[0-9a-f]{8}-scale-[0-9a-f]{8}$/),
    ]);
  });

  test('feature store and endpoint grants: reordering gives byte-identical JSON, repeating creates nothing', () => {
    const build = (order: 'ab' | 'ba') => synth((stack) => {
      const w = world(stack);
      const features = new FeatureStore(stack, 'features', { target: w.aws });
      features.addFeatureView({ name: 'user_stats', entities: ['user_id'], features: [{ name: 'ltv', type: 'float' }], ttl: Duration.days(2) });
      const endpoint = new ModelEndpoint(stack, 'api', { target: w.aws, model: 's3://models/ltv/v1/', image: '123456789012.dkr.ecr.us-east-1.amazonaws.com/ltv:1', replicas: { min: 1, max: 2 } });
      const calls = [() => features.grantRead(w.train), () => features.grantWrite(w.ops), () => endpoint.grantInvoke(w.train)];
      for (const c of order === 'ab' ? calls : [...calls].reverse()) c();
      expect(features.grantRead(w.train)).toBe(features.grantRead(w.train));
    });
    const a = build('ab');
    expect(build('ba').text).toBe(a.text);
    const names = Object.values(resources(a.json, 'aws_iam_role_policy')).map((p) => String(p.name)).filter((n) => /-(read|write|invoke)-[0-9a-f]{8}$/.test(n));
    expect(names).toHaveLength(3);
  });

  test('a repeated grant returns the first record and creates nothing more', () => {
    let first: unknown;
    let again: unknown;
    const { json, stack } = synth((s) => {
      const w = world(s);
      first = w.train.grantArtifactsWrite(w.ops);
      again = w.train.grantArtifactsWrite(w.ops);
    });
    expect(again).toBe(first);
    const writes = Object.values(resources(json, 'aws_iam_role_policy')).filter((p) => String(p.name).includes('-artifacts-write-'));
    expect(writes).toHaveLength(1);
    const train = stack.node.findChild('train');
    expect(grantFacts(train)).toEqual([expect.objectContaining({ kind: 'artifacts-write', owner: 'test/train', grantee: 'test/ops', id: writes[0].name })]);
  });

  test('a grantee that is no construct is keyed by its principal, resolved stably', () => {
    const ids: string[][] = [];
    for (let i = 0; i < 2; i++) {
      synth((stack) => {
        const w = world(stack);
        // Tokens are numbered in creation order: create some first on the second run to move them.
        if (i === 1) new AwsTarget(stack, 'other', { region: 'us-west-2' });
        const role = (id: string): IGrantable => ({ grantPrincipal: w.ops.grantPrincipal.kind === 'aws'
          ? { ...w.ops.grantPrincipal, roleArn: `${w.ops.grantPrincipal.roleArn}-${id}` } : w.ops.grantPrincipal });
        ids.push([w.train.grantAgentAccess(role('a')).id, w.train.grantAgentAccess(role('b')).id]);
      });
    }
    expect(ids[1]).toEqual(ids[0]);
    expect(ids[0][0]).not.toBe(ids[0][1]);
    synth((stack) => {
      const w = world(stack);
      expect(granteeKey(stack, { grantPrincipal: w.ops.grantPrincipal })).toMatch(/^aws:\$\{aws_iam_role\.ops_iam_role_[0-9A-F]{8}\.arn\}$/);
    });
  });

  test('fails when a grant crosses clouds, naming both', () => {
    synth((stack) => {
      const w = world(stack);
      const gcp = new GcpTarget(stack, 'gcp', { project: 'p-123456', region: 'us-central1' });
      const other = new GpuCluster(stack, 'g', { target: gcp, accelerator: 'L4', agentBundleDir: BUNDLE });
      const e = caught(() => w.train.grantArtifactsRead(other));
      expect({ code: e.code, prop: e.prop, value: e.value, path: e.path }).toEqual({ code: 'CROSS_CLOUD_GRANT', prop: 'grantArtifactsRead', value: 'gcp', path: 'test/train' });
      expect(e.message).toMatch(/grantee is on gcp, the cluster on aws; grants do not cross clouds/);
    });
  });
});
