import { App, TerraformStack, Testing } from 'cdktf';
import { Construct } from 'constructs';
import { execFileSync } from 'child_process';
import { mkdtempSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { MlInfraError } from '../src/core/errors';

export interface Synthed {
  /** Synthesized Terraform JSON text, as `cdktf synth` writes it for the stack. */
  readonly text: string;
  readonly json: TerraformJson;
  readonly stack: TerraformStack;
}

export interface TerraformJson {
  resource?: Record<string, Record<string, Record<string, unknown>>>;
  data?: Record<string, Record<string, Record<string, unknown>>>;
  output?: Record<string, { value: unknown; sensitive?: boolean }>;
  provider?: Record<string, unknown[]>;
  [key: string]: unknown;
}

/** Builds a stack with `build` and synthesizes it (aspects and validations included). */
export function synth(build: (stack: TerraformStack) => void): Synthed {
  const app = Testing.app();
  const stack = new TerraformStack(app, 'test');
  build(stack);
  const text = Testing.synth(stack, true);
  return { text, json: JSON.parse(text), stack };
}

/** All resources of a Terraform type, by logical name. */
export function resources(json: TerraformJson, type: string): Record<string, Record<string, unknown>> {
  return json.resource?.[type] ?? {};
}

/** The one resource of `type`; fails the test when there are none or several. */
export function only(json: TerraformJson, type: string): Record<string, unknown> {
  const all = Object.values(resources(json, type));
  if (all.length !== 1) throw new Error(`expected exactly one ${type}, found ${all.length}`);
  return all[0];
}

/** Resource counts by type, for "creates exactly these" assertions. */
export function countByType(json: TerraformJson): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [type, byName] of Object.entries(json.resource ?? {})) out[type] = Object.keys(byName).length;
  return out;
}

/** Runs `bash -n` over a script: syntax only, nothing executes. Throws with bash's message. */
export function bashSyntaxCheck(script: string): void {
  execFileSync('bash', ['-n'], { input: script, stdio: ['pipe', 'pipe', 'pipe'] });
}

/**
 * Turns a string from synthesized JSON into what the host would receive: Terraform references
 * replaced by placeholder values and `$${` unescaped.
 */
export function renderTerraformString(value: string): string {
  let out = '';
  for (let i = 0; i < value.length; i++) {
    if (value.startsWith('$${', i)) { out += '${'; i += 2; continue; }
    if (value.startsWith('${', i)) {
      let depth = 0;
      let j = i + 1;
      for (; j < value.length; j++) {
        if (value[j] === '{') depth++;
        else if (value[j] === '}' && --depth === 0) break;
      }
      out += 'TFREF';
      i = j;
      continue;
    }
    out += value[i];
  }
  return out;
}

export { App, Construct };

let bundleDir: string | undefined;
/**
 * A fixed stand-in for the built agent (dist/agent), so construct tests and their snapshots do
 * not move when the agent is rebuilt.
 */
export function testAgentBundle(): string {
  if (!bundleDir) {
    bundleDir = mkdtempSync(join(tmpdir(), 'mlinfra-test-agent-'));
    writeFileSync(join(bundleDir, 'mlinfra-agent.js'), "'use strict';\n// mlinfra-agent test stand-in\n");
    writeFileSync(join(bundleDir, 'storage-s3.js'), "'use strict';\n// storage module test stand-in\n");
    writeFileSync(join(bundleDir, 'storage-gcs.js'), "'use strict';\n// storage module test stand-in\n");
    // What AWS hosts load beside the agent (queue client, Auto Scaling calls, rollouts).
    for (const f of ['queue-sqs.js', 'autoscaling-aws.js', 'rollout-sagemaker.js', 'rollout-cloudrun.js', 'rollout-kubernetes.js']) {
      writeFileSync(join(bundleDir, f), `'use strict';\n// ${f} test stand-in\n`);
    }
  }
  return bundleDir;
}

/** The MlInfraError `fn` throws; fails the test when it throws nothing or something else. */
export function caught(fn: () => unknown): MlInfraError {
  try {
    fn();
  } catch (e) {
    if (e instanceof MlInfraError) return e;
    throw e;
  }
  throw new Error('did not throw');
}
