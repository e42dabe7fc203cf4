/**
 * TrainingPipeline on Kubernetes: the spec in a ConfigMap and a CronJob that enqueues one run per tick:
 * a small CPU pod running `mlinfra-agent run-pipeline` against the cluster's gateway, which runs each
 * step as a Kueue-admitted Job or JobSet. No pod holds a GPU between runs; nothing is scaled here.
 */
import { Construct } from 'constructs';
import { ConfigMapV1 } from '@cdktf/provider-kubernetes/lib/config-map-v1';
import { CronJobV1 } from '@cdktf/provider-kubernetes/lib/cron-job-v1';
import { ServiceAccountV1 } from '@cdktf/provider-kubernetes/lib/service-account-v1';
import { AGENT_CLIENT_LABEL } from '../../contracts/client-labels';
import { Errors } from '../../core/errors';
import { KubernetesPrincipal } from '../../core/grants';
import { KubernetesTarget } from '../../core/targets';
import type { IGpuCluster } from '../gpu-cluster';
import { TrainingPipelineBackend, TrainingPipelinePlan } from './plan';

/** Where the runner pod mounts the spec ConfigMap. */
export const SPEC_DIR = '/etc/mlinfra/pipeline';
/** Where the runner pod mounts the tokens of onOom clusters: `<dir>/<cluster>/token`. */
export const ONOOM_TOKEN_DIR = '/var/run/mlinfra/clusters';
const BUNDLE_DIR = '/opt/mlinfra/bundle';
const MODULE_DIR = '/opt/mlinfra/storage-module';
const AGENT_DIR = '/opt/mlinfra/agent';
const TOKEN_DIR = '/var/run/mlinfra/agent';
const CREDENTIALS_DIR = '/var/run/mlinfra/storage';
const UID = '1000';
/** How long a run may wait for its first step's nodes (GPU nodes may have to be created first). */
const WAIT_SECONDS = 45 * 60;

export interface KubernetesTrainingPipelineResources {
  /** `spec.json`. */
  readonly configMap: ConfigMapV1;
  readonly serviceAccount: ServiceAccountV1;
  readonly cronJob?: CronJobV1;
}

export function buildKubernetesTrainingPipeline(pipeline: Construct, target: KubernetesTarget, cluster: IGpuCluster, plan: TrainingPipelinePlan):
  TrainingPipelineBackend & { readonly resources: KubernetesTrainingPipelineResources } {
  const gw = cluster.jobRuntime;
  const token = cluster.agentTokenSecret;
  if (!gw || token.store !== 'kubernetes-secret') {
    throw Errors.invalid(pipeline, 'cluster', cluster.node.path, 'a GpuCluster on this Kubernetes target (created in this app)', 'has no Kubernetes job runtime');
  }
  // Multi-node steps are JobSets: their pods land on several nodes, which a ReadWriteOnce volume cannot follow.
  const multi = plan.spec.steps.filter((s) => s.kind === 'run' && (s.nodes ?? 1) > 1).map((s) => s.name);
  if (multi.length && gw.storage?.volumeClaim) {
    throw Errors.conflict(pipeline, 'steps', multi,
      'single-node steps on a cluster whose artifacts are its file:// volume; for multi-node steps give the KubernetesTarget an artifactStore (s3:// or gs://)',
      `have multi-node steps (${multi.map((m) => `"${m}"`).join(', ')}), but this cluster keeps artifacts on a single-node volume that pods on a second node cannot mount`);
  }
  const provider = target.provider;
  const namespace = target.namespace;
  const labels = { ...target.labels, 'app.kubernetes.io/name': 'mlinfra-pipeline', 'app.kubernetes.io/instance': plan.name };
  const meta = (name: string) => ({ name, namespace, labels: { ...labels } });

  const configMap = new ConfigMapV1(pipeline, 'spec', {
    provider, metadata: meta(`${plan.name}-spec`), data: { 'spec.json': plan.specJson },
  });
  const specUri = `file://${SPEC_DIR}/spec.json`;

  // The runner's identity. Only the runner pod mounts its token (below); the account grants nothing
  // until a ModelEndpoint serving this pipeline's model binds its rollout Role to it.
  const serviceAccount = new ServiceAccountV1(pipeline, 'service-account', {
    provider, metadata: meta(`${plan.name}-runner`), automountServiceAccountToken: false,
  });
  const principal: KubernetesPrincipal = { kind: 'kubernetes', namespace, serviceAccountName: serviceAccount.metadata.name };
  cluster.grantAgentAccess({ grantPrincipal: principal });
  for (const big of plan.oomClusters.values()) big.grantAgentAccess({ grantPrincipal: principal });

  if (!plan.schedule) return { specUri, resources: { configMap, serviceAccount } };

  const nonRoot = {
    runAsNonRoot: true, runAsUser: UID, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] },
    readOnlyRootFilesystem: true, seccompProfile: { type: 'RuntimeDefault' },
  };
  // The cluster's agent image (Node.js), so a private registry or pinned digest applies here too.
  const image = gw.agentImage;
  const st = gw.storage ?? {};
  // Steps see the run directory where the runner writes it: on the cluster's artifacts volume (file://),
  // which job pods mount at the same path. With an object store, the run is recorded there.
  // file:// artifactsUri: the path where job pods (and this pod) mount the cluster's volume.
  const artifactsDir = st.volumeClaim ? gw.artifactsUri.slice('file://'.length) : undefined;
  const workDir = artifactsDir ? `${artifactsDir}/pipeline-runs` : '/tmp/pipeline-runs';
  const oom = [...plan.oomClusters.entries()].map(([name, big], i) => {
    const secret = big.agentTokenSecret;
    if (secret.store !== 'kubernetes-secret') {
      throw Errors.conflict(pipeline, 'onOom', name, 'a cluster on this Kubernetes target (its token is a Kubernetes Secret)', `keeps its token in ${secret.store}`);
    }
    return { name, secret, volume: `oom-token-${i}` };
  });

  const cronJob = new CronJobV1(pipeline, 'cron-job', {
    provider, metadata: meta(plan.name),
    spec: {
      schedule: plan.schedule.cron('a Kubernetes CronJob'),
      // One run at a time: a tick while a run is still going is skipped.
      concurrencyPolicy: 'Forbid',
      startingDeadlineSeconds: 3600,
      successfulJobsHistoryLimit: 3,
      failedJobsHistoryLimit: 5,
      jobTemplate: {
        metadata: { labels: { ...labels } },
        spec: {
          // Steps retry inside the run; a second runner would start a second run.
          backoffLimit: 0,
          ...(plan.maxRunSeconds !== undefined ? { activeDeadlineSeconds: plan.maxRunSeconds + WAIT_SECONDS } : {}),
          template: {
            metadata: { labels: { ...labels, [AGENT_CLIENT_LABEL]: 'true' } },
            spec: {
              serviceAccountName: serviceAccount.metadata.name,
              // A promotion lists the endpoint records and patches the endpoints' Deployments with this
              // token (runtime-agent/registry/endpoints.ts). The pod's setting wins over the account's false
              // (kubernetes.io/docs/tasks/configure-pod-container/configure-service-account/#opt-out-of-api-credential-automounting).
              automountServiceAccountToken: true,
              restartPolicy: 'Never',
              enableServiceLinks: false,
              securityContext: { runAsNonRoot: true, runAsUser: UID, runAsGroup: UID, fsGroup: UID, seccompProfile: { type: 'RuntimeDefault' } },
              initContainer: [{
                name: 'install', image,
                // The bundle is self-contained: copy, never install.
                command: ['sh', '-c', `set -e; cp ${BUNDLE_DIR}/mlinfra-agent.js ${AGENT_DIR}/${st.module ? ` && cp ${MODULE_DIR}/${st.module.file} ${AGENT_DIR}/` : ''}`],
                securityContext: nonRoot,
                resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '500m', memory: '256Mi' } },
                volumeMount: [
                  { name: 'bundle', mountPath: BUNDLE_DIR, readOnly: true }, { name: 'agent', mountPath: AGENT_DIR },
                  ...(st.module ? [{ name: 'storage-module', mountPath: MODULE_DIR, readOnly: true }] : []),
                ],
              }],
              container: [{
                name: 'run-pipeline', image,
                command: ['node', `${AGENT_DIR}/mlinfra-agent.js`, 'run-pipeline', specUri, '--url', cluster.agentUrl, '--token-file', `${TOKEN_DIR}/token`,
                  '--work-dir', workDir],
                env: [
                  { name: 'HOME', value: '/tmp' },
                  // Job pods have their own disks: the run directory travels through the store (runtime-agent/k8s/step-files.ts).
                  ...(artifactsDir ? [] : [{ name: 'MLINFRA_STEP_FILES', value: 'object-store' }]),
                  ...Object.entries(st.env ?? {}).map(([name, value]) => ({ name, value })),
                  ...(st.credentials ? [{ name: st.credentials.envVar, value: `${CREDENTIALS_DIR}/${st.credentials.key}` }] : []),
                ],
                securityContext: nonRoot,
                resources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { cpu: '1', memory: '1Gi' } },
                volumeMount: [
                  { name: 'agent', mountPath: AGENT_DIR, readOnly: true },
                  { name: 'spec', mountPath: SPEC_DIR, readOnly: true },
                  { name: 'token', mountPath: TOKEN_DIR, readOnly: true },
                  { name: 'tmp', mountPath: '/tmp' },
                  ...(artifactsDir ? [{ name: 'artifacts', mountPath: artifactsDir }] : []),
                  ...(st.credentials ? [{ name: 'storage-credentials', mountPath: CREDENTIALS_DIR, readOnly: true }] : []),
                  ...oom.map((o) => ({ name: o.volume, mountPath: `${ONOOM_TOKEN_DIR}/${o.name}`, readOnly: true })),
                ],
              }],
              volume: [
                { name: 'agent', emptyDir: {} },
                { name: 'tmp', emptyDir: { sizeLimit: '1Gi' } },
                { name: 'bundle', configMap: { name: gw.bundleConfigMap, defaultMode: '0444' } },
                ...(st.module ? [{ name: 'storage-module', configMap: { name: st.module.configMap, defaultMode: '0444' } }] : []),
                { name: 'spec', configMap: { name: configMap.metadata.name, defaultMode: '0444' } },
                { name: 'token', secret: { secretName: token.name, defaultMode: '0400', items: [{ key: token.key, path: 'token' }] } },
                ...(st.volumeClaim ? [{ name: 'artifacts', persistentVolumeClaim: { claimName: st.volumeClaim } }] : []),
                ...(st.credentials ? [{ name: 'storage-credentials', secret: { secretName: st.credentials.secret, defaultMode: '0400', items: [{ key: st.credentials.key, path: st.credentials.key }] } }] : []),
                ...oom.map((o) => ({ name: o.volume, secret: { secretName: o.secret.name, defaultMode: '0400', items: [{ key: o.secret.key, path: 'token' }] } })),
              ],
            },
          },
        },
      },
    },
  });
  return { specUri, scheduleName: cronJob.metadata.name, resources: { configMap, serviceAccount, cronJob } };
}
