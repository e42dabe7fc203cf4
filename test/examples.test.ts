// Every example: references resolve inside their stack, zero policy findings, generated secrets only in
// secret stores, and a second synth is byte-identical. One shared synth per example (support/examples.ts).
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'fs';
import { tmpdir } from 'os';
import { join, relative } from 'path';
import { EXAMPLE_NAMES, exampleOutput, synthExampleTo } from './support/examples';

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

/** Where a generated secret may be written: only into a secret store. */
const SECRET_SINKS = [
  /^resource\.aws_secretsmanager_secret_version\.[^.]+\.secret_string$/,
  /^resource\.google_secret_manager_secret_version\.[^.]+\.secret_data$/,
  /^resource\.kubernetes_secret_v1\.[^.]+\.data\.[^.]+$/,
  // ElastiCache takes its AUTH token as an argument; Terraform keeps it in state only.
  /^resource\.aws_elasticache_replication_group\.[^.]+\.auth_token$/,
];
/** Attributes that hold secret values; nothing may copy them anywhere. */
const SECRET_ATTRS = /\.(secret_string|secret_data|result)\}|kubernetes_secret_v1\.[^.}]+\.data/;

function walk(node: unknown, path: string, visit: (path: string, value: string) => void): void {
  if (typeof node === 'string') visit(path, node);
  else if (Array.isArray(node)) node.forEach((v, i) => walk(v, `${path}[${i}]`, visit));
  else if (node && typeof node === 'object') for (const [k, v] of Object.entries(node)) walk(v, path ? `${path}.${k}` : k, visit);
}

describe.each(EXAMPLE_NAMES)('example %s', (name) => {
  test('synthesizes every stack; every reference resolves inside its stack', () => {
    const { stacks } = exampleOutput(name);
    expect(Object.keys(stacks).length).toBeGreaterThan(0);
    for (const json of Object.values(stacks)) {
      const text = JSON.stringify(json);
      expect(Object.keys(json.resource ?? {}).length).toBeGreaterThan(0);
      // Every ${type.name.attr} points at a resource or data source that exists in this stack.
      const refs = [...text.matchAll(/\$\{(data\.)?([a-z0-9_]+)\.([A-Za-z0-9_-]+)[.[}]/g)];
      for (const [, data, type, ref] of refs) {
        if (['var', 'local', 'path', 'module', 'each', 'count', 'self', 'terraform'].includes(type)) continue;
        const table = data ? json.data : json.resource;
        expect({ ref: `${data ?? ''}${type}.${ref}`, found: !!table?.[type]?.[ref] }).toEqual({ ref: `${data ?? ''}${type}.${ref}`, found: true });
      }
    }
  });

  test('synthesizes with zero policy findings; what constructs suppress carries a reason', () => {
    const { findings, printed } = exampleOutput(name);
    expect(findings.filter((f) => !f.suppressed).map((f) => `${f.ruleId} ${f.path}${f.detail ? `: ${f.detail}` : ''}`)).toEqual([]);
    for (const f of findings.filter((x) => x.suppressed)) expect(f.suppressed!.reason.length).toBeGreaterThan(20);
    expect(printed).toEqual(findings);
  });

  test('generated secrets reach only the secret store, never user-data, env, outputs or locals', () => {
    for (const [id, json] of Object.entries(exampleOutput(name).stacks)) {
      const places: string[] = [];
      walk(json, '', (path, value) => {
        if (/\$\{random_password\./.test(value)) places.push(path);
        if (SECRET_ATTRS.test(value) && !/random_password/.test(value)) throw new Error(`${id}: ${path} copies a secret value: ${value.slice(0, 120)}`);
      });
      for (const p of places) expect({ stack: id, path: p, allowed: SECRET_SINKS.some((r) => r.test(p)) }).toEqual({ stack: id, path: p, allowed: true });
      // No literal token-looking value either: every secret is generated at apply time.
      expect(JSON.stringify(json)).not.toMatch(/"(token|password|secret)"\s*:\s*"[A-Za-z0-9+/=]{16,}"/i);
    }
  });

  test('synth is deterministic: a second run gives byte-identical output', () => {
    const { dir: a } = exampleOutput(name);
    const b = mkdtempSync(join(tmpdir(), 'mlinfra-synth-'));
    try {
      synthExampleTo(name, b);
      const fa = files(a);
      const fb = files(b);
      expect([...fa.keys()].sort()).toEqual([...fb.keys()].sort());
      for (const [k, v] of fa) expect({ file: k, same: v.equals(fb.get(k)!) }).toEqual({ file: k, same: true });
      const text = [...fa.values()].map((v) => v.toString('utf8')).join('\n');
      expect(text).not.toContain(a);
      expect(text).not.toContain(b);
      expect(text).not.toContain(process.cwd());
    } finally {
      rmSync(b, { recursive: true, force: true });
    }
  });
});
