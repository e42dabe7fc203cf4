// examples.test.ts's checks for the platform and cross-cloud examples. Cross-stack references only
// exist after prepareStack (App.synth runs it for every stack first), so it is called here too;
// remote state reads ${terraform.workspace}, a Terraform built-in.
import { App, Testing } from 'cdktf';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'fs';
import { tmpdir } from 'os';
import { join, relative } from 'path';
import { build as crossCloud } from '../../examples/cross-cloud/main';
import { build as platform } from '../../examples/platform/main';

const EXAMPLES = { platform, 'cross-cloud': crossCloud };

function files(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.set(relative(dir, p), readFileSync(p));
    }
  };
  walk(dir);
  return out;
}

describe.each(Object.entries(EXAMPLES))('example %s', (name, build) => {
  test('synthesizes every stack; every reference resolves inside its stack', () => {
    const app = Testing.app();
    const stacks = build(app);
    stacks.forEach((s) => s.prepareStack());
    const texts = new Map(stacks.map((s) => [s.node.id, Testing.synth(s, true)]));
    for (const stack of stacks) {
      const text = texts.get(stack.node.id)!;
      const json = JSON.parse(text);
      expect(Object.keys(json.resource ?? {}).length).toBeGreaterThan(0);
      const refs = [...text.matchAll(/\$\{(data\.)?([a-z0-9_]+)\.([A-Za-z0-9_-]+)[.\[}]/g)];
      for (const [, data, type, id] of refs) {
        if (['var', 'local', 'path', 'module', 'each', 'count', 'self', 'terraform'].includes(type)) continue;
        const table = data ? json.data : json.resource;
        expect({ ref: `${data ?? ''}${type}.${id}`, found: !!table?.[type]?.[id] }).toEqual({ ref: `${data ?? ''}${type}.${id}`, found: true });
      }
    }
    if (name === 'cross-cloud') {
      const serve = JSON.parse(texts.get('serve-aws')!);
      const train = JSON.parse(texts.get('train-gcp')!);
      const remote = serve.data.terraform_remote_state['cross-stack-reference-input-train-gcp'];
      expect(remote).toMatchObject({ backend: 'local', config: { path: '../../../terraform.train-gcp.tfstate' } });
      const outputs = Object.keys(train.output).filter((k) => k.startsWith('cross-stack-output-'));
      expect(outputs.length).toBe(1);
      const model = Object.values(serve.resource.aws_sagemaker_model)[0] as any;
      expect(model.primary_container.environment.MODEL_SOURCE_URI)
        .toMatch(new RegExp(`^gs://\\$\\{data\\.terraform_remote_state\\.cross-stack-reference-input-train-gcp\\.outputs\\.${outputs[0]}\\}/pipelines/`));
      expect(model.primary_container.environment.MODEL_URI).toBe('s3://ml-platform-models/ltv/current');
      expect(stacks[1].dependencies).toContain(stacks[0]);
    }
  });

  test('synth is deterministic: two runs give byte-identical output', () => {
    const run = () => {
      const outdir = mkdtempSync(join(tmpdir(), 'mlinfra-synth-'));
      const app = new App({ outdir, skipValidation: false });
      build(app);
      app.synth();
      return outdir;
    };
    const a = run();
    const b = run();
    try {
      const fa = files(a);
      const fb = files(b);
      expect([...fa.keys()].sort()).toEqual([...fb.keys()].sort());
      for (const [k, v] of fa) expect({ file: k, same: v.equals(fb.get(k)!) }).toEqual({ file: k, same: true });
      const text = [...fa.values()].map((v) => v.toString('utf8')).join('\n');
      expect(text).not.toContain(a);
      expect(text).not.toContain(process.cwd());
    } finally {
      rmSync(a, { recursive: true, force: true });
      rmSync(b, { recursive: true, force: true });
    }
  });
});
