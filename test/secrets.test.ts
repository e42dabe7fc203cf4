import { Testing } from 'cdktf';
import { EXAMPLES } from '../examples';

/** Where a generated secret may be written: only into a secret store. */
const ALLOWED = [
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

describe.each(Object.entries(EXAMPLES))('secrets in example %s', (_name, build) => {
  const stacks = build(Testing.app());

  test.each(stacks.map((s) => [s.node.id, s] as const))('%s: generated secrets reach only the secret store, never user-data, env, outputs or locals', (_id, stack) => {
    const json = JSON.parse(Testing.synth(stack, true));
    const places: string[] = [];
    walk(json, '', (path, value) => {
      if (/\$\{random_password\./.test(value)) places.push(path);
      if (SECRET_ATTRS.test(value) && !/random_password/.test(value)) throw new Error(`${path} copies a secret value: ${value.slice(0, 120)}`);
    });
    for (const p of places) expect({ path: p, allowed: ALLOWED.some((r) => r.test(p)) }).toEqual({ path: p, allowed: true });
    // No literal token-looking value either: every secret is generated at apply time.
    expect(JSON.stringify(json)).not.toMatch(/"(token|password|secret)"\s*:\s*"[A-Za-z0-9+/=]{16,}"/i);
  });
});
