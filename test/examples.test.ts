import { App, Testing } from 'cdktf';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'fs';
import { tmpdir } from 'os';
import { join, relative } from 'path';
import { EXAMPLES } from '../examples';

function synthTo(build: (app: App) => unknown): string {
  const outdir = mkdtempSync(join(tmpdir(), 'mlinfra-synth-'));
  const app = new App({ outdir, skipValidation: false });
  build(app);
  app.synth();
  return outdir;
}

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

describe.each(Object.entries(EXAMPLES))('example %s', (_name, build) => {
  test('synthesizes every stack; every reference resolves inside its stack', () => {
    const app = Testing.app();
    const stacks = build(app);
    // Cross-stack references become outputs and remote state here, as in App.synth().
    stacks.forEach((s) => s.prepareStack());
    expect(stacks.length).toBeGreaterThan(0);
    for (const stack of stacks) {
      const text = Testing.synth(stack, true);
      const json = JSON.parse(text);
      expect(Object.keys(json.resource ?? {}).length).toBeGreaterThan(0);
      // Every ${type.name.attr} points at a resource or data source that exists in this stack.
      const refs = [...text.matchAll(/\$\{(data\.)?([a-z0-9_]+)\.([A-Za-z0-9_-]+)[.\[}]/g)];
      for (const [, data, type, name] of refs) {
        if (['var', 'local', 'path', 'module', 'each', 'count', 'self', 'terraform'].includes(type)) continue;
        const table = data ? json.data : json.resource;
        expect({ ref: `${data ?? ''}${type}.${name}`, found: !!table?.[type]?.[name] }).toEqual({ ref: `${data ?? ''}${type}.${name}`, found: true });
      }
    }
  });

  test('synth is deterministic: two runs give byte-identical output', () => {
    const a = synthTo(build);
    const b = synthTo(build);
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
