/**
 * ModelEndpoint on GCP serving pipeline.model: the endpoint record a promotion reads
 * (src/runtime-agent/registry/rollout-cloudrun.ts `CloudRunRolloutConfig`) and the promoting hosts'
 * rights for exactly what that rollout does: get and update this one service, acting as its runtime
 * service account. Every version is an immutable prefix under `models/versions/`, which the serving
 * account reads (the endpoint's model prefix): a canary's old revision keeps reading its own version.
 */
import { Construct } from 'constructs';
import { CloudRunV2Service } from '@cdktf/provider-google/lib/cloud-run-v2-service';
import { CloudRunV2ServiceIamMember } from '@cdktf/provider-google/lib/cloud-run-v2-service-iam-member';
import { ServiceAccount } from '@cdktf/provider-google/lib/service-account';
import { ServiceAccountIamMember } from '@cdktf/provider-google/lib/service-account-iam-member';
import { Errors } from '../../core/errors';
import { grantOnce, principalOn } from '../../core/grants';
import { GcpTarget } from '../../core/targets';
import { ModelEndpointPlan, RolloutSpec } from './plan';
import { bakeSeconds, RegistryPlan, recordJson } from './registry';

/** The new revision's first share of traffic: the canary, one linear step, or all of it. */
export function cloudRunCanaryPercent(r: RolloutSpec): number {
  if (r.kind === 'canary') return r.percent!;
  if (r.kind === 'linear') return r.percentPerStep!;
  return 100;
}

export function gcpRegistryRecord(endpoint: Construct, target: GcpTarget, plan: ModelEndpointPlan, reg: RegistryPlan, service: CloudRunV2Service, runtime: ServiceAccount, image: string,
  template: Record<string, unknown>): void {
  const registry = reg.registry;
  if (!registry.storeEndpointRecord) {
    throw Errors.conflict(endpoint, 'model', registry.artifactsUri, "pipeline.model of a pipeline whose artifacts are in its cluster's bucket (the default artifacts)",
      "is outside the cluster's bucket, where this endpoint cannot write its rollout record");
  }
  const hosts = principalOn(endpoint, 'model', registry.rolloutHosts, 'gcp', 'the endpoint');
  const canaryPercent = cloudRunCanaryPercent(plan.rollout);
  const record = {
    kind: 'cloudrun', name: plan.name, service: `projects/${target.project}/locations/${target.region}/services/${plan.name}`,
    canaryPercent, bakeSeconds: canaryPercent < 100 ? bakeSeconds(plan.rollout) : 0,
    // Terraform ignores the live template (the rollout owns it), so what it would change reaches
    // serving through the record: each rollout deploys this template, and a sync (every pipeline run,
    // `models sync`) rolls the current version out again when it changed (registry/cloudrun-template.ts).
    image, template,
  };
  const scope = new Construct(endpoint, 'registry');
  registry.storeEndpointRecord(scope, 'record', plan.name, recordJson(record));
  grantOnce(endpoint, registry.rolloutHosts, 'rollout', (id) => {
    // run.developer on this service only: services.get and services.update (cloud.google.com/run/docs/reference/iam/roles).
    new CloudRunV2ServiceIamMember(scope, `${id}-run`, {
      provider: target.provider, project: target.project, location: target.region, name: service.name, role: 'roles/run.developer', member: hosts.member,
    });
    // Deploying a revision that runs as a service account needs actAs on it (cloud.google.com/run/docs/securing/service-identity).
    new ServiceAccountIamMember(scope, `${id}-act-as`, {
      provider: target.provider, serviceAccountId: runtime.name, role: 'roles/iam.serviceAccountUser', member: hosts.member,
    });
  });
}
