/**
 * TrainingPipeline on Kubernetes: the spec in a ConfigMap, a CronJob whose pod scales the agent's
 * StatefulSet up (at least one pod), waits for it, then runs `mlinfra-agent run-pipeline` against it.
 */
import { Construct } from 'constructs';
import { ConfigMapV1 } from '@cdktf/provider-kubernetes/lib/config-map-v1';
import { CronJobV1 } from '@cdktf/provider-kubernetes/lib/cron-job-v1';
import { ServiceAccountV1 } from '@cdktf/provider-kubernetes/lib/service-account-v1';
import { KubernetesPrincipal } from '../../core/grants';
import { KubernetesTarget } from '../../core/targets';
import { AGENT_CLIENT_LABEL, STATEFULSET_SCALE_CLIENT_JS } from '../gpu-cluster/kubernetes';
import { IPipelineCluster, TrainingPipelineBackend, TrainingPipelinePlan } from './plan';

/** Where the runner pod mounts the spec ConfigMap. */
export const SPEC_DIR = '/etc/mlinfra/pipeline';
/** Where the runner pod mounts the tokens of onOom clusters: `<dir>/<cluster>/token`. */
export const ONOOM_TOKEN_DIR = '/var/run/mlinfra/clusters';
const BUNDLE_DIR = '/opt/mlinfra/bundle';
const AGENT_DIR = '/opt/mlinfra/agent';
const TOKEN_DIR = '/var/run/mlinfra/agent';
const UID = '1000';
/** How long the runner waits for an agent pod (GPU nodes may have to be created first). */
const WAIT_SECONDS = 45 * 60;

export interface KubernetesTrainingPipelineResources {
  /** `spec.json` (and the runner's `scale-up.js`). */
  readonly configMap: ConfigMapV1;
  readonly serviceAccount: ServiceAccountV1;
  readonly cronJob?: CronJobV1;
}

/**
 * Run by the CronJob before the pipeline: raise the agent StatefulSet to at least MIN_REPLICAS
 * (never lower it: pods may be running other jobs), then wait until the agent answers /healthz.
 * No `${` in here: Terraform would interpolate it.
 */
export const SCALE_UP_SCRIPT = `'use strict';
// mlinfra pipeline runner: scale the agent up from zero and wait for it.
const fs = require('fs');
const http = require('http');
const https = require('https');
const SA = '/var/run/secrets/kubernetes.io/serviceaccount';
const { STATEFUL_SET, MIN_REPLICAS, AGENT_URL, WAIT_SECONDS } = process.env;

${STATEFULSET_SCALE_CLIENT_JS}

function healthy() {
  return new Promise((resolve) => {
    const req = http.get(AGENT_URL + '/healthz', { timeout: 5000 }, (res) => { res.resume(); resolve(res.statusCode === 200); });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

async function main() {
  const scale = await scaleApi('GET');
  const replicas = (scale.spec && scale.spec.replicas) || 0;
  const wanted = Number(MIN_REPLICAS);
  if (replicas < wanted) {
    await scaleApi('PATCH', { metadata: { resourceVersion: scale.metadata.resourceVersion }, spec: { replicas: wanted } });
    process.stdout.write('mlinfra: scaled ' + STATEFUL_SET + ' from ' + replicas + ' to ' + wanted + '\\n');
  }
  const deadline = Date.now() + Number(WAIT_SECONDS) * 1000;
  while (!(await healthy())) {
    if (Date.now() > deadline) throw new Error('agent at ' + AGENT_URL + ' not healthy after ' + WAIT_SECONDS + ' s');
    await new Promise((r) => setTimeout(r, 10000));
  }
  process.stdout.write('mlinfra: agent at ' + AGENT_URL + ' is up\\n');
}

main().catch((err) => {
  process.stderr.write('mlinfra: ' + err.message + '\\n');
  process.exitCode = 1;
});
`;

export function buildKubernetesTrainingPipeline(pipeline: Construct, target: KubernetesTarget, cluster: IPipelineCluster, plan: TrainingPipelinePlan):
  TrainingPipelineBackend & { readonly resources: KubernetesTrainingPipelineResources } {
  const res = cluster.kubernetes;
  if (!res) throw new Error(`${pipeline.node.path}: cluster on kubernetes has no kubernetes resources`);
  const provider = target.provider;
  const namespace = target.namespace;
  const labels = { ...target.labels, 'app.kubernetes.io/name': 'mlinfra-pipeline', 'app.kubernetes.io/instance': plan.name };
  const meta = (name: string) => ({ name, namespace, labels: { ...labels } });

  const configMap = new ConfigMapV1(pipeline, 'spec', {
    provider, metadata: meta(`${plan.name}-spec`),
    data: { 'spec.json': plan.specJson, 'scale-up.js': SCALE_UP_SCRIPT },
  });
  const specUri = `file://${SPEC_DIR}/spec.json`;

  // The runner's identity: scale the agent, read its token (and those of onOom clusters).
  const serviceAccount = new ServiceAccountV1(pipeline, 'service-account', {
    provider, metadata: meta(`${plan.name}-runner`), automountServiceAccountToken: false,
  });
  const principal: KubernetesPrincipal = { kind: 'kubernetes', namespace, serviceAccountName: serviceAccount.metadata.name };
  cluster.grantAgentAccess({ grantPrincipal: principal });
  for (const big of plan.oomClusters.values()) big.grantAgentAccess({ grantPrincipal: principal });

  if (!plan.schedule) return { specUri, resources: { configMap, serviceAccount } };
  cluster.grantScale({ grantPrincipal: principal });

  const nonRoot = {
    runAsNonRoot: true, runAsUser: UID, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] },
    readOnlyRootFilesystem: false, seccompProfile: { type: 'RuntimeDefault' },
  };
  // The cluster's agent image (its install init container: Node.js and npm), so a private registry
  // or pinned digest applies here too. Not the agent container's: that is the job image.
  const image = res.statefulSet.spec.template.spec.initContainer.get(0).image;
  const oom = [...plan.oomClusters.entries()].map(([name, big], i) => ({ name, secret: big.agentTokenSecret, volume: `oom-token-${i}` }));

  const cronJob = new CronJobV1(pipeline, 'cron-job', {
    provider, metadata: meta(plan.name),
    spec: {
      schedule: plan.schedule.cron('a Kubernetes CronJob'),
      // One run at a time: a run still going when the next tick comes keeps the cluster.
      concurrencyPolicy: 'Forbid',
      startingDeadlineSeconds: 3600,
      successfulJobsHistoryLimit: 3,
      failedJobsHistoryLimit: 5,
      jobTemplate: {
        metadata: { labels: { ...labels } },
        spec: {
          // Steps retry inside the run; one more pod covers an evicted runner.
          backoffLimit: 1,
          ...(plan.maxRunSeconds !== undefined ? { activeDeadlineSeconds: plan.maxRunSeconds + WAIT_SECONDS } : {}),
          template: {
            metadata: { labels: { ...labels, [AGENT_CLIENT_LABEL]: 'true' } },
            spec: {
              serviceAccountName: serviceAccount.metadata.name,
              // scale-up.js patches statefulsets/scale with it.
              automountServiceAccountToken: true,
              restartPolicy: 'Never',
              enableServiceLinks: false,
              securityContext: { runAsNonRoot: true, runAsUser: UID, runAsGroup: UID, fsGroup: UID, seccompProfile: { type: 'RuntimeDefault' } },
              initContainer: [
                {
                  name: 'install', image,
                  command: ['sh', '-c', `set -e; cp ${BUNDLE_DIR}/mlinfra-agent.js ${BUNDLE_DIR}/package.json ${AGENT_DIR}/ && cd ${AGENT_DIR} && npm install --omit=dev --no-audit --no-fund --loglevel=error`],
                  env: [{ name: 'npm_config_cache', value: '/tmp/npm-cache' }],
                  securityContext: nonRoot,
                  resources: { requests: { cpu: '500m', memory: '512Mi' }, limits: { cpu: '2', memory: '2Gi' } },
                  volumeMount: [{ name: 'bundle', mountPath: BUNDLE_DIR, readOnly: true }, { name: 'agent', mountPath: AGENT_DIR }],
                },
                {
                  name: 'scale-up', image,
                  command: ['node', `${SPEC_DIR}/scale-up.js`],
                  env: [
                    { name: 'STATEFUL_SET', value: res.statefulSet.metadata.name },
                    { name: 'MIN_REPLICAS', value: String(plan.startNodes) },
                    { name: 'AGENT_URL', value: cluster.agentUrl },
                    { name: 'WAIT_SECONDS', value: String(WAIT_SECONDS) },
                  ],
                  securityContext: nonRoot,
                  resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: '200m', memory: '128Mi' } },
                  volumeMount: [{ name: 'spec', mountPath: SPEC_DIR, readOnly: true }],
                },
              ],
              container: [{
                name: 'run-pipeline', image,
                command: ['node', `${AGENT_DIR}/mlinfra-agent.js`, 'run-pipeline', specUri, '--url', cluster.agentUrl, '--token-file', `${TOKEN_DIR}/token`],
                securityContext: nonRoot,
                resources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { cpu: '1', memory: '1Gi' } },
                volumeMount: [
                  { name: 'agent', mountPath: AGENT_DIR, readOnly: true },
                  { name: 'spec', mountPath: SPEC_DIR, readOnly: true },
                  { name: 'token', mountPath: TOKEN_DIR, readOnly: true },
                  ...oom.map((o) => ({ name: o.volume, mountPath: `${ONOOM_TOKEN_DIR}/${o.name}`, readOnly: true })),
                ],
              }],
              volume: [
                { name: 'agent', emptyDir: {} },
                { name: 'bundle', configMap: { name: res.configMap.metadata.name, defaultMode: '0444' } },
                { name: 'spec', configMap: { name: configMap.metadata.name, defaultMode: '0444' } },
                { name: 'token', secret: { secretName: res.secret.metadata.name, defaultMode: '0400', items: [{ key: 'token', path: 'token' }] } },
                ...oom.map((o) => {
                  if (o.secret.store !== 'kubernetes-secret') throw new Error(`${pipeline.node.path}: onOom cluster ${o.name} keeps its token in ${o.secret.store}`);
                  return { name: o.volume, secret: { secretName: o.secret.name, defaultMode: '0400', items: [{ key: o.secret.key, path: 'token' }] } };
                }),
              ],
            },
          },
        },
      },
    },
  });
  return { specUri, scheduleName: cronJob.metadata.name, resources: { configMap, serviceAccount, cronJob } };
}

