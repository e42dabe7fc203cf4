/**
 * Jobs and JobSets for one submitted job, and their state read back: the gateway's whole model.
 * The Kubernetes API server is the store: everything the gateway reports comes from these objects
 * and their pods. Kueue admits them through the LocalQueue named in `kueue.x-k8s.io/queue-name`.
 * Versions: batch/v1 Job; JobSet v0.12.0 `jobset.x-k8s.io/v1alpha2`; Kueue v0.19.2.
 */
import type { Failure, FailureClass, JobState } from '../types';

export const JOBSET_API_VERSION = 'jobset.x-k8s.io/v1alpha2';
export const QUEUE_NAME_LABEL = 'kueue.x-k8s.io/queue-name';
export const JOB_ID_LABEL = 'mlinfra.dev/job-id';
export const CLUSTER_LABEL = 'mlinfra.dev/cluster';
export const SPEC_ANNOTATION = 'mlinfra.dev/spec';
/** torchrun's default c10d port. */
export const RENDEZVOUS_PORT = 29500;
/** The replicated job of a multi-node JobSet: pods are `<jobset>-node-0-<rank>`. */
export const REPLICATED_JOB = 'node';
/** Where the wrapper writes its failure class; Kubernetes copies it into the container status. */
export const TERMINATION_LOG = '/dev/termination-log';
/** Finished objects are kept this long as the job record, then the TTL controller removes them. */
export const KEEP_FINISHED_SECONDS = 7 * 24 * 3600;

/** The parts of Kubernetes objects the gateway reads; everything optional, read defensively. */
export interface KubeCondition { type?: string; status?: string; reason?: string; message?: string; lastTransitionTime?: string }
export interface KubeTerminated { exitCode?: number; reason?: string; message?: string; signal?: number }
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>;
    creationTimestamp?: string; ownerReferences?: Array<{ kind?: string; name?: string }>;
  };
  spec?: { suspend?: boolean; [k: string]: unknown };
  status?: {
    conditions?: KubeCondition[]; active?: number; failed?: number; succeeded?: number; restarts?: number;
    startTime?: string; completionTime?: string; phase?: string;
    containerStatuses?: Array<{ name?: string; state?: { terminated?: KubeTerminated }; lastState?: { terminated?: KubeTerminated } }>;
  };
}

export interface Toleration {
  readonly key: string;
  readonly operator: 'Exists' | 'Equal';
  readonly value?: string;
  readonly effect: 'NoSchedule' | 'NoExecute';
}

/** Everything the gateway knows about the cluster: written by the construct into its ConfigMap. */
export interface GatewayConfig {
  readonly namespace: string;
  readonly cluster: string;
  readonly localQueue: string;
  /** GPUs the ClusterQueue holds in all (nodes.max x per node); undefined for an adopted queue. */
  readonly quotaGpus?: number;
  readonly gpusPerNode: number;
  readonly maxNodes: number;
  /** Job image (CUDA, frameworks) and the agent image (Node.js) the install init container runs. */
  readonly image: string;
  readonly agentImage: string;
  /** ConfigMap holding mlinfra-agent.js and package.json. */
  readonly bundleConfigMap: string;
  /** Service account of job pods (no API token mounted). */
  readonly jobServiceAccount: string;
  readonly nodeSelector: Readonly<Record<string, string>>;
  readonly tolerations: readonly Toleration[];
  /** CPU (cores) and memory (GiB) requested per GPU; limits are twice these. */
  readonly cpuPerGpu: number;
  readonly memoryGiBPerGpu: number;
  readonly artifactsUri: string;
  /** ConfigMap where pipeline run ends are counted (POST /v1/pipeline-runs). @default - not recorded (404) */
  readonly pipelineRunsConfigMap?: string;
  /** How job pods reach `artifactsUri`. @default - nothing mounted (tests) */
  readonly storage?: GatewayStorage;
  readonly labels: Readonly<Record<string, string>>;
}

/** Artifacts for job pods: an object store (env, a credentials file, the storage module) or a volume (file://). */
export interface GatewayStorage {
  /** Storage settings the agent's S3/GCS module reads (AWS_ENDPOINT_URL_S3, AWS_REGION ...). */
  readonly env?: Readonly<Record<string, string>>;
  /** Credentials file from a Secret, mounted read-only; `envVar` names the file for the SDK. */
  readonly credentials?: { readonly secret: string; readonly key: string; readonly envVar: string };
  /** ConfigMap with the storage module (`file`: storage-s3.js or storage-gcs.js) loaded beside the agent. */
  readonly module?: { readonly configMap: string; readonly file: string };
  /** file://: the PersistentVolumeClaim mounted at the artifacts directory (one node: ReadWriteOnce). */
  readonly volumeClaim?: string;
}

/** Where job pods mount a file:// artifacts volume (the path of `file://` artifactsUri). */
export const ARTIFACTS_DIR = '/var/lib/mlinfra/artifacts';
const MODULE_DIR = '/opt/mlinfra/storage-module';
const CREDENTIALS_DIR = '/var/run/mlinfra/storage';

/** A submitted job as the gateway accepted it (the agent's POST /v1/jobs body plus `nodes`). */
export interface SubmitSpec {
  readonly name?: string;
  readonly argv: string[];
  readonly env: Record<string, string>;
  readonly cwd?: string;
  readonly gpus: number;
  readonly nodes: number;
  readonly priority: number;
  readonly retries: number;
  readonly timeoutSeconds?: number;
  readonly kind: 'train' | 'batch';
  readonly checkpointDir?: string;
  readonly artifactUri?: string;
  readonly input?: string;
  readonly output?: string;
  /** Batch: shards, one Indexed Job completion each. */
  readonly shards?: number;
}

const AGENT_DIR = '/opt/mlinfra/agent';
const BUNDLE_DIR = '/opt/mlinfra/bundle';
const AGENT_NODE = `${AGENT_DIR}/bin/node`;
const UID = 1000;
/** Same contract as the cluster's agent container: GKE driver directory first (see gpu-cluster/kubernetes.ts). */
export const GPU_ENV_SH = [
  `export PATH="/usr/local/nvidia/bin:$PATH:${AGENT_DIR}/bin"`,
  'case "$LD_LIBRARY_PATH" in "") LD_LIBRARY_PATH=/usr/local/nvidia/lib64:/usr/local/nvidia/lib ;; *) LD_LIBRARY_PATH="/usr/local/nvidia/lib64:/usr/local/nvidia/lib:$LD_LIBRARY_PATH" ;; esac',
  'export LD_LIBRARY_PATH',
  'exec "$@"',
].join('; ');

/** Quantity strings Kubernetes keeps as written (integers, Gi). */
function resourcesFor(c: GatewayConfig, gpus: number): { requests: Record<string, string>; limits: Record<string, string> } {
  const share = Math.max(gpus, 1);
  const cpu = Math.max(1, Math.floor(c.cpuPerGpu * share));
  const mem = Math.max(1, Math.floor(c.memoryGiBPerGpu * share));
  const gpu: Record<string, string> = gpus > 0 ? { 'nvidia.com/gpu': String(gpus) } : {};
  return {
    requests: { cpu: String(cpu), memory: `${mem}Gi`, ...gpu },
    limits: { cpu: String(cpu * 2), memory: `${mem * 2}Gi`, ...gpu },
  };
}

function podTemplate(c: GatewayConfig, id: string, s: SubmitSpec, extraEnv: Array<Record<string, unknown>>, labels: Record<string, string>): Record<string, unknown> {
  const st = c.storage ?? {};
  // Checkpoints go to the artifact store unless the job names its own place.
  const checkpoint = s.checkpointDir ?? (s.kind === 'train' ? `${c.artifactsUri.replace(/\/+$/, '')}/checkpoints/${id}/` : undefined);
  const env: Array<Record<string, unknown>> = [
    ...Object.entries(s.env).map(([name, value]) => ({ name, value })),
    ...Object.entries(st.env ?? {}).map(([name, value]) => ({ name, value })),
    ...(st.credentials ? [{ name: st.credentials.envVar, value: `${CREDENTIALS_DIR}/${st.credentials.key}` }] : []),
    { name: 'MLINFRA_JOB_ID', value: id },
    { name: 'MLINFRA_GPUS', value: String(s.gpus) },
    { name: 'MLINFRA_CLUSTER', value: c.cluster },
    // uid 1000 has no home in most job images (HOME=/ is not writable): caches go to /tmp.
    { name: 'HOME', value: '/tmp' },
    { name: 'MLINFRA_ARTIFACTS_URI', value: c.artifactsUri },
    ...(checkpoint ? [{ name: 'MLINFRA_CHECKPOINT_URI', value: checkpoint }] : []),
    ...(s.artifactUri ? [{ name: 'MLINFRA_ARTIFACT_URI', value: s.artifactUri }] : []),
    ...(s.input ? [{ name: 'MLINFRA_INPUT', value: s.input }] : []),
    ...(s.output ? [{ name: 'MLINFRA_OUTPUT', value: s.output }] : []),
    ...extraEnv,
  ];
  return {
    metadata: { labels },
    spec: {
      restartPolicy: 'Never',
      serviceAccountName: c.jobServiceAccount,
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      // SIGTERM to the wrapper, which passes it to the job and waits this long for a checkpoint.
      terminationGracePeriodSeconds: 90,
      securityContext: { runAsNonRoot: true, runAsUser: UID, runAsGroup: UID, fsGroup: UID, seccompProfile: { type: 'RuntimeDefault' } },
      ...(Object.keys(c.nodeSelector).length ? { nodeSelector: { ...c.nodeSelector } } : {}),
      tolerations: c.tolerations.map((t) => ({ ...t })),
      initContainers: [{
        name: 'install', image: c.agentImage,
        // The bundle is self-contained: Node.js and the agent (and the storage module it loads from its
        // own directory for s3:// or gs://) are copied, nothing installed. Backticks: Kubernetes expands $(...).
        command: ['sh', '-c', `set -e; mkdir -p ${AGENT_DIR}/bin && cp "\`command -v node\`" ${AGENT_NODE} && cp ${BUNDLE_DIR}/mlinfra-agent.js ${AGENT_DIR}/${st.module ? ` && cp ${MODULE_DIR}/${st.module.file} ${AGENT_DIR}/` : ''}`],
        securityContext: nonRoot(),
        resources: { requests: { cpu: '500m', memory: '512Mi' }, limits: { cpu: '2', memory: '2Gi' } },
        volumeMounts: [
          { name: 'bundle', mountPath: BUNDLE_DIR, readOnly: true }, { name: 'agent', mountPath: AGENT_DIR },
          ...(st.module ? [{ name: 'storage-module', mountPath: MODULE_DIR, readOnly: true }] : []),
        ],
      }],
      containers: [{
        name: 'job', image: c.image,
        // The agent wraps the command: SIGTERM passing, failure class in the termination log, shard index.
        command: ['sh', '-c', GPU_ENV_SH, 'mlinfra-agent', AGENT_NODE, `${AGENT_DIR}/mlinfra-agent.js`, 'k8s-wrap', '--', ...s.argv],
        ...(s.cwd ? { workingDir: s.cwd } : {}),
        env,
        resources: resourcesFor(c, s.gpus),
        terminationMessagePath: TERMINATION_LOG,
        terminationMessagePolicy: 'FallbackToLogsOnError',
        securityContext: nonRoot(),
        ports: s.nodes > 1 ? [{ name: 'rendezvous', containerPort: RENDEZVOUS_PORT, protocol: 'TCP' }] : undefined,
        volumeMounts: [
          { name: 'agent', mountPath: AGENT_DIR, readOnly: true },
          // PyTorch data loaders share tensors through /dev/shm; the runtime's default is 64 MiB.
          { name: 'dshm', mountPath: '/dev/shm' },
          ...(st.volumeClaim ? [{ name: 'artifacts', mountPath: ARTIFACTS_DIR }] : []),
          ...(st.credentials ? [{ name: 'storage-credentials', mountPath: CREDENTIALS_DIR, readOnly: true }] : []),
        ],
      }],
      volumes: [
        { name: 'agent', emptyDir: {} },
        { name: 'bundle', configMap: { name: c.bundleConfigMap, defaultMode: 0o444 } },
        { name: 'dshm', emptyDir: { medium: 'Memory' } },
        ...(st.module ? [{ name: 'storage-module', configMap: { name: st.module.configMap, defaultMode: 0o444 } }] : []),
        ...(st.volumeClaim ? [{ name: 'artifacts', persistentVolumeClaim: { claimName: st.volumeClaim } }] : []),
        ...(st.credentials ? [{ name: 'storage-credentials', secret: { secretName: st.credentials.secret, defaultMode: 0o400, items: [{ key: st.credentials.key, path: st.credentials.key }] } }] : []),
      ],
    },
  };
}

function nonRoot(): Record<string, unknown> {
  // Writable root: jobs write caches under $HOME and /tmp.
  return { runAsNonRoot: true, runAsUser: UID, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, readOnlyRootFilesystem: false, seccompProfile: { type: 'RuntimeDefault' } };
}

function metaFor(c: GatewayConfig, id: string, s: SubmitSpec): { metadata: Record<string, unknown>; labels: Record<string, string> } {
  // Pods carry no queue-name label: Kueue's plain-pod integration would try to manage them too.
  const labels = { ...c.labels, [CLUSTER_LABEL]: c.cluster, [JOB_ID_LABEL]: id };
  // The spec without env values (they may be secrets and are in the pod spec anyway), for status.
  const { env, ...rest } = s;
  const annotations = { [SPEC_ANNOTATION]: JSON.stringify({ ...rest, envKeys: Object.keys(env) }) };
  return { metadata: { name: id, namespace: c.namespace, labels: { ...labels, [QUEUE_NAME_LABEL]: c.localQueue }, annotations }, labels };
}

/** A single-node job: a batch/v1 Job, created suspended so Kueue starts it on admission. */
export function renderJob(c: GatewayConfig, id: string, s: SubmitSpec): KubeObject {
  const { metadata, labels } = metaFor(c, id, s);
  const shards = s.kind === 'batch' ? (s.shards ?? 1) : 1;
  return {
    apiVersion: 'batch/v1', kind: 'Job', metadata,
    spec: {
      // Kueue unsuspends a Job when its workload is admitted (kueue.sigs.k8s.io/docs/tasks/run/jobs).
      suspend: true,
      backoffLimit: s.retries,
      ...(s.timeoutSeconds !== undefined ? { activeDeadlineSeconds: Math.ceil(s.timeoutSeconds) } : {}),
      ttlSecondsAfterFinished: KEEP_FINISHED_SECONDS,
      // Batch: an Indexed Job, one completion per shard; the completion index is the shard
      // (JOB_COMPLETION_INDEX, read by the wrapper).
      ...(shards > 1 ? { completionMode: 'Indexed', completions: shards, parallelism: shards } : {}),
      // An evicted or preempted pod does not count against retries (needs restartPolicy Never).
      podFailurePolicy: { rules: [{ action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget' }] }] },
      template: podTemplate(c, id, s, [], labels),
    },
  };
}

/**
 * A multi-node job: a JobSet of one replicated Job, Indexed, one pod per node. JobSet creates a
 * headless Service named after the JobSet (network.subdomain defaults to it), and with
 * enableDNSHostnames pod `<jobset>-node-0-<i>` resolves as `<jobset>-node-0-<i>.<jobset>`; rank 0
 * hosts torchrun's c10d rendezvous. The env is the multi-node contract of contracts/pipeline-spec.ts
 * (MULTI_NODE_ENV), as on VMs; k8s-wrap runs a `.py` command under torchrun like gang-rank does. torchrun
 * also reads its flags from PET_* (as the Kubeflow training operator sets them), so `torchrun train.py` runs unchanged.
 */
export function renderJobSet(c: GatewayConfig, id: string, s: SubmitSpec): KubeObject {
  const { metadata, labels } = metaFor(c, id, s);
  const leader = `${id}-${REPLICATED_JOB}-0-0.${id}`;
  const env = [
    { name: 'MLINFRA_NNODES', value: String(s.nodes) },
    { name: 'MLINFRA_NODE_RANK', valueFrom: { fieldRef: { fieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']" } } },
    { name: 'MLINFRA_GPUS_PER_NODE', value: String(s.gpus) },
    { name: 'MLINFRA_RDZV_ENDPOINT', value: `${leader}:${RENDEZVOUS_PORT}` },
    { name: 'MASTER_ADDR', value: leader },
    { name: 'MASTER_PORT', value: String(RENDEZVOUS_PORT) },
    { name: 'MLINFRA_GANG_ID', value: id },
    // 0 on the first run, n after n gang restarts (JobSet's own annotation); k8s-wrap makes it MLINFRA_GANG_ATTEMPT (1, 2 ...).
    { name: 'MLINFRA_JOBSET_RESTART_ATTEMPT', valueFrom: { fieldRef: { fieldPath: "metadata.annotations['jobset.sigs.k8s.io/restart-attempt']" } } },
    { name: 'PET_NNODES', value: String(s.nodes) },
    { name: 'PET_NPROC_PER_NODE', value: String(Math.max(1, s.gpus)) },
    { name: 'PET_RDZV_BACKEND', value: 'c10d' },
    { name: 'PET_RDZV_ENDPOINT', value: `${leader}:${RENDEZVOUS_PORT}` },
    { name: 'PET_RDZV_ID', value: id },
  ];
  const template = podTemplate(c, id, s, env, labels) as { spec: Record<string, unknown> };
  return {
    apiVersion: JOBSET_API_VERSION, kind: 'JobSet', metadata,
    spec: {
      suspend: true,
      network: { enableDNSHostnames: true, publishNotReadyAddresses: true },
      // A failed node restarts the whole gang (rendezvous needs everyone); retries bound the restarts.
      failurePolicy: { maxRestarts: s.retries },
      successPolicy: { operator: 'All' },
      ttlSecondsAfterFinished: KEEP_FINISHED_SECONDS,
      replicatedJobs: [{
        name: REPLICATED_JOB,
        replicas: 1,
        template: {
          metadata: { labels },
          spec: {
            completionMode: 'Indexed', completions: s.nodes, parallelism: s.nodes, backoffLimit: 0,
            ...(s.timeoutSeconds !== undefined ? { activeDeadlineSeconds: Math.ceil(s.timeoutSeconds) } : {}),
            template: { ...template, spec: { ...template.spec, subdomain: id } },
          },
        },
      }],
    },
  };
}

// ---- reading state back

export interface PodView {
  readonly name: string;
  readonly phase?: string;
  readonly terminated?: { exitCode?: number; reason?: string; message?: string; signal?: number };
  readonly disruption?: string;
}

export interface JobView {
  readonly id: string;
  readonly state: JobState;
  readonly failure: Failure | null;
  readonly exitCode: number | null;
}

const cond = (o: KubeObject, type: string) => (o.status?.conditions ?? []).find((x) => x.type === type && x.status === 'True');

/** The wrapper's JSON termination message, if any: `{"class": "oom", "reason": "..."}`. */
function wrapperFailure(p: PodView): Failure | null {
  try {
    const m = JSON.parse(p.terminated?.message ?? '');
    if (m && typeof m.class === 'string' && typeof m.reason === 'string') return { class: m.class as FailureClass, reason: m.reason };
  } catch {
    // not a wrapper message (killed before it wrote one)
  }
  return null;
}

/** Why pods failed, most telling first: OOM, preemption, the wrapper's own class, the exit code. */
export function podFailure(pods: readonly PodView[]): Failure | null {
  const oom = pods.find((p) => p.terminated?.reason === 'OOMKilled');
  if (oom) return { class: 'oom', reason: `pod ${oom.name} was OOMKilled (exit ${oom.terminated?.exitCode ?? 137}): raise gpus (memory follows them) or lower the batch size` };
  const disrupted = pods.find((p) => p.disruption);
  if (disrupted) return { class: 'preempted', reason: `pod ${disrupted.name}: ${disrupted.disruption}` };
  for (const p of pods) {
    const w = wrapperFailure(p);
    if (w) return w;
  }
  const failed = pods.find((p) => p.terminated && p.terminated.exitCode !== 0);
  if (failed) return { class: 'exit', reason: `pod ${failed.name} exited with ${failed.terminated?.exitCode}${failed.terminated?.reason ? ` (${failed.terminated.reason})` : ''}` };
  return null;
}

/** State of a Job or JobSet and its pods. */
export function viewOf(o: KubeObject, pods: readonly PodView[]): JobView {
  const id = o.metadata?.name ?? '';
  const exitCode = pods.map((p) => p.terminated?.exitCode).find((x) => x !== undefined && x !== 0) ?? null;
  if (cond(o, 'Complete') || cond(o, 'Completed')) return { id, state: 'succeeded', failure: null, exitCode: 0 };
  const failed = cond(o, 'Failed');
  if (failed) {
    if (failed.reason === 'DeadlineExceeded') return { id, state: 'failed', failure: { class: 'timeout', reason: failed.message ?? 'active deadline exceeded' }, exitCode };
    return { id, state: 'failed', failure: podFailure(pods) ?? { class: 'exit', reason: `${failed.reason ?? 'Failed'}: ${failed.message ?? ''}`.trim() }, exitCode };
  }
  // Suspended: waiting for Kueue (or evicted by it and re-queued).
  if (o.spec?.suspend === true) return { id, state: 'queued', failure: null, exitCode: null };
  const running = pods.some((p) => p.phase === 'Running');
  return { id, state: running ? 'running' : 'queued', failure: null, exitCode: null };
}

/** A pod from the API as the view needs it. */
export function podView(p: KubeObject): PodView {
  const cs = (p.status?.containerStatuses ?? []).find((c) => c.name === 'job');
  const t = cs?.state?.terminated ?? cs?.lastState?.terminated;
  const dt = (p.status?.conditions ?? []).find((c) => c.type === 'DisruptionTarget' && c.status === 'True');
  return {
    name: p.metadata?.name ?? '',
    phase: p.status?.phase,
    terminated: t ? { exitCode: t.exitCode, reason: t.reason, message: t.message, signal: t.signal } : undefined,
    disruption: dt ? `${dt.reason ?? 'DisruptionTarget'}${dt.message ? `: ${dt.message}` : ''}` : undefined,
  };
}
