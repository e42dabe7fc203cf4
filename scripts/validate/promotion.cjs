/**
 * The no-diff-after-promotion check (issue 16 item 4), with the real hashicorp/aws provider, offline.
 *
 * A SageMaker endpoint serving `pipeline.model` is moved by each promotion to the endpoint config
 * `<endpoint>-v<N>` (src/runtime-agent/registry/rollout-sagemaker.ts). This builds a configuration of
 * just that endpoint as the stack declares it (references replaced by fixed literals), and a state in
 * which a promotion already moved it to `<endpoint>-v3`, then runs `terraform plan -refresh=false
 * -detailed-exitcode`: the provider plans against the state without calling AWS. Exit 0 (no changes)
 * is required. The same plan without the endpoint's `lifecycle` must show the change (exit 2), so the
 * check can fail.
 */
/* eslint-disable @typescript-eslint/no-require-imports -- a CommonJS script, like prepare.cjs's callers */
const { mkdirSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
/* eslint-enable @typescript-eslint/no-require-imports */

/** Endpoints that a registry rollout manages: those ignoring `endpoint_config_name`. */
function managedEndpoints(json) {
  return Object.entries(json.resource?.aws_sagemaker_endpoint ?? {})
    .filter(([, r]) => (r.lifecycle?.ignore_changes ?? []).includes('endpoint_config_name'));
}

/** Replaces every `${...}` reference with a fixed literal, the same one for the same reference. */
function literalize(value, refs) {
  if (typeof value === 'string') {
    return value.replace(/\$\{[^}]*\}/g, (m) => {
      if (!refs.has(m)) refs.set(m, `ref${refs.size}`);
      return refs.get(m);
    });
  }
  if (Array.isArray(value)) return value.map((v) => literalize(v, refs));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, literalize(v, refs)]));
  return value;
}

/** The state attributes of a configured block, in the provider schema's shape (blocks are lists). */
function stateAttributes(config, block) {
  const out = {};
  for (const name of Object.keys(block.attributes ?? {})) {
    out[name] = config?.[name] ?? null;
  }
  for (const [name, b] of Object.entries(block.block_types ?? {})) {
    const v = config?.[name];
    const items = v === undefined || v === null ? [] : Array.isArray(v) ? v : [v];
    out[name] = items.map((item) => stateAttributes(item, b.block));
  }
  return out;
}

/**
 * Writes one directory per managed endpoint: `main.tf.json` and `terraform.tfstate` (promoted), and
 * `control/` (the same without lifecycle). Returns the directories.
 */
function preparePromotionChecks(json, { awsVersion, schema, workDir }) {
  const region = json.provider?.aws?.[0]?.region ?? 'us-east-1';
  return managedEndpoints(json).map(([name, resource]) => {
    const refs = new Map();
    // The endpoint alone: no provider alias, dependencies or construct metadata.
    const rest = Object.fromEntries(Object.entries(resource).filter(([k]) => !['provider', 'depends_on', '//', 'lifecycle'].includes(k)));
    const lifecycle = resource.lifecycle;
    const body = literalize(rest, refs);
    const endpointName = body.name;
    body.endpoint_config_name = `${endpointName}-initial`;
    const config = (withLifecycle) => ({
      terraform: { required_providers: { aws: { source: 'hashicorp/aws', version: awsVersion } } },
      provider: {
        aws: [{
          region, access_key: 'AKIAIOSFODNN7EXAMPLE', secret_key: 'mlinfra-validate-not-a-secret',
          skip_credentials_validation: true, skip_requesting_account_id: true, skip_metadata_api_check: true, skip_region_validation: true,
        }],
      },
      resource: { aws_sagemaker_endpoint: { endpoint: { ...body, ...(withLifecycle ? { lifecycle } : {}) } } },
    });
    const attributes = {
      ...stateAttributes(body, schema.aws_sagemaker_endpoint.block),
      id: endpointName,
      arn: `arn:aws:sagemaker:${region}:123456789012:endpoint/${endpointName}`,
      // What a promotion of v3 left behind.
      endpoint_config_name: `${endpointName}-v3`,
      tags: null, tags_all: {},
    };
    const state = {
      version: 4, terraform_version: '1.7.0', serial: 1, lineage: 'mlinfra-validate-promotion', outputs: {},
      resources: [{
        mode: 'managed', type: 'aws_sagemaker_endpoint', name: 'endpoint', provider: 'provider["registry.terraform.io/hashicorp/aws"]',
        instances: [{ schema_version: schema.aws_sagemaker_endpoint.version ?? 0, attributes, sensitive_attributes: [] }],
      }],
    };
    const dir = join(workDir, `promotion-${name}`);
    for (const [d, withLifecycle] of [[dir, true], [join(dir, 'control'), false]]) {
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, 'main.tf.json'), JSON.stringify(config(withLifecycle), null, 2));
      writeFileSync(join(d, 'terraform.tfstate'), JSON.stringify(state, null, 2));
    }
    return { resource: name, endpointName, dir, control: join(dir, 'control') };
  });
}

/** Runs the checks; `run(cmd, argv, cwd)` resolves `{ code, stdout, stderr }`. Returns diagnostics. */
async function runPromotionChecks(checks, run) {
  const diagnostics = [];
  for (const c of checks) {
    const plan = async (dir) => {
      const init = await run('terraform', ['init', '-backend=false', '-input=false', '-no-color'], dir);
      if (init.code !== 0) return { code: -1, out: `${init.stdout}${init.stderr}` };
      const p = await run('terraform', ['plan', '-refresh=false', '-detailed-exitcode', '-lock=false', '-input=false', '-no-color'], dir);
      return { code: p.code, out: `${p.stdout}${p.stderr}` };
    };
    const promoted = await plan(c.dir);
    if (promoted.code !== 0) {
      diagnostics.push({
        severity: 'error', address: `aws_sagemaker_endpoint.${c.resource}`,
        summary: `a plan after a promotion to ${c.endpointName}-v3 is not empty (exit ${promoted.code}): Terraform would move the endpoint back`,
        detail: promoted.out.trim().slice(0, 4000),
      });
      continue;
    }
    const control = await plan(c.control);
    if (control.code !== 2 || !/endpoint_config_name/.test(control.out)) {
      diagnostics.push({
        severity: 'error', address: `aws_sagemaker_endpoint.${c.resource}`,
        summary: `the control plan (no lifecycle) shows no endpoint_config_name change (exit ${control.code}): the promotion check proves nothing`,
        detail: control.out.trim().slice(0, 4000),
      });
    }
  }
  return diagnostics;
}

module.exports = { managedEndpoints, preparePromotionChecks, runPromotionChecks, stateAttributes, literalize };
