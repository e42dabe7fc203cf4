import { DefaultTokenResolver, StringConcat, TerraformOutput, TerraformStack, Token, Tokenization } from 'cdktf';
import { Construct } from 'constructs';
import { Duration } from '../../core/duration';
import { Errors } from '../../core/errors';
import { tfLiteral } from '../../core/terraform-literal';
import { GrantPrincipal, IGrantable } from '../../core/grants';
import { IModelRegistry, modelRegistry } from '../../core/model';
import { resourceName } from '../../core/naming';
import { TargetKind } from '../../core/accelerators';
import { recordEdge } from '../../core/facts';
import { Grant } from '../../core/grants';
import { targetKind } from '../../core/targets';
import type { IGpuCluster } from '../gpu-cluster';
import type { IWatchablePipeline } from '../monitoring-stack';
import { canonicalJson, ENV_NAME, PIPELINE_NAME, PIPELINE_SPEC_VERSION, specId, STEP_NAME } from '../../contracts/pipeline-spec';
import type { PipelineSpec, PipelineStepSpec, RunStepSpec } from '../../contracts/pipeline-spec';
import { TrainingPipelinePlan, TrainingPipelineTarget } from './plan';
import { findCycle, validTimezone } from './dag';
import { multiNode } from './multi-node';
import { Schedule } from './schedule';
import type { AwsTrainingPipelineResources } from './aws';
import type { GcpTrainingPipelineResources } from './gcp';
import type { KubernetesTrainingPipelineResources } from './kubernetes';
import { lazyModule } from '../../core/lazy';

/**
 * One entry per target: its rules and builder (one file each). A backend and its provider package
 * load when a construct first uses their target.
 */
const TARGETS: Readonly<Record<TargetKind, () => TrainingPipelineTarget>> = {
  aws: lazyModule(() => (require('./aws') as typeof import('./aws')).AWS_TRAINING_PIPELINE),
  gcp: lazyModule(() => (require('./gcp') as typeof import('./gcp')).GCP_TRAINING_PIPELINE),
  kubernetes: lazyModule(() => (require('./kubernetes-target') as typeof import('./kubernetes-target')).KUBERNETES_TRAINING_PIPELINE),
};

export { Schedule, ScheduleKind } from './schedule';
export type { AwsTrainingPipelineResources } from './aws';
export type { GcpTrainingPipelineResources } from './gcp';
export type { KubernetesTrainingPipelineResources } from './kubernetes';

/** Options of a command step. */
export interface RunStepOptions {
  /** Steps that must succeed first. @default - none: starts with the run */
  readonly after?: string[];
  /** Further attempts after a failed one (0-10). @default 0 */
  readonly retries?: number;
  /** Per attempt. @default - no limit */
  readonly timeout?: Duration;
  /** Plain environment. Secret-looking names are refused; MLINFRA_* is reserved. @default - none */
  readonly env?: Record<string, string>;
  /** GPUs the step takes (0 to the cluster's accelerators per node). One node only: with `nodes` > 1 give `gpusPerNode`. @default 1 */
  readonly gpus?: number;
  /** Hosts it runs on at once (a gang, one rank per host; contract: MULTI_NODE_ENV in contracts/pipeline-spec). @default 1 */
  readonly nodes?: number;
  /** With `nodes` > 1: GPUs on each node (0 to the cluster's accelerators per node). @default - every accelerator of the node */
  readonly gpusPerNode?: number;
  /**
   * A bigger cluster on the same target: an attempt that runs out of memory is resubmitted there.
   * @default - OOM is a failure like any other (retried on the same cluster)
   */
  readonly onOom?: IGpuCluster;
}

/** Options of a promote step. */
export interface DeployIfBetterOptions {
  /** Key in the run's metrics.json. */
  readonly metric: string;
  /** Steps that must succeed first; at least one must be a run step. */
  readonly after: string[];
  /** @default true */
  readonly higherIsBetter?: boolean;
}

/** A step as declared; validated by the pipeline, which knows its cluster. */
export type StepDefinition =
  | { readonly kind: 'run'; readonly name: string; readonly argv: string[]; readonly options: RunStepOptions }
  | { readonly kind: 'deployIfBetter'; readonly name: string; readonly options: DeployIfBetterOptions };

/** Steps of a pipeline. */
export class Step {
  /** Runs `argv` as one agent job on the pipeline's cluster. */
  public static run(name: string, argv: string[], options: RunStepOptions = {}): StepDefinition {
    return { kind: 'run', name, argv, options: options ?? {} };
  }
  /** Promotes the run's model to `models/current` only if `metric` beats the current model's. */
  public static deployIfBetter(name: string, options: DeployIfBetterOptions): StepDefinition {
    return { kind: 'deployIfBetter', name, options };
  }
  private constructor() {}
}

export interface TrainingPipelineProps {
  /** The cluster steps run on (its target is the pipeline's target). */
  readonly cluster: IGpuCluster;
  /** The DAG, in the order the spec lists it. */
  readonly steps: StepDefinition[];
  /**
   * When to run. AWS/GCP: the schedule enqueues one run on the cluster's jobs queue (EventBridge
   * Scheduler -> SQS, Cloud Scheduler -> Pub/Sub) and one host leases it; Kubernetes: a CronJob runs it.
   * @default - no schedule: run it with `mlinfra-agent run-pipeline <specUri>`
   */
  readonly schedule?: Schedule;
  /** IANA time zone of a cron schedule. Kubernetes: only UTC (the CronJob binding has no time zone). @default 'UTC' */
  readonly timezone?: string;
  /** Recorded in each run's params.json and passed to steps as MLINFRA_PARAMS. @default - none */
  readonly params?: Record<string, string | number | boolean>;
  /** Model store root for runs and models. @default - `<cluster.artifactsUri>/pipelines/<name>` */
  readonly artifacts?: string;
  /** Run the agent's stop command when a run ends. @default true */
  readonly autostop?: boolean;
  /** Pipeline name ([a-z][a-z0-9-], at most 40). @default - from the construct path, with a hash */
  readonly name?: string;
}

const SECRET_NAME = /(SECRET|PASSWORD|PASSWD|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL|ACCESS_?KEY)/i;
const METRIC = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;
const PARAM = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;
const MAX_RETRIES = 10;



/**
 * A scheduled DAG of steps run by a GpuCluster's agents, with a conditional promote step. The spec is
 * stored where the agent reads it; the schedule starts the cluster from zero.
 * - AWS: EventBridge Scheduler; GCP: Cloud Scheduler; Kubernetes: a CronJob.
 *
 * @example
 * new TrainingPipeline(stack, 'ltv', {
 *   cluster, schedule: Schedule.cron('0 3 * * *'),
 *   steps: [
 *     Step.run('features', ['python3', 'featurize.py'], { gpus: 0 }),
 *     Step.run('train', ['python3', 'train.py'], { after: ['features'], retries: 2 }),
 *     Step.deployIfBetter('promote', { metric: 'val_auc', after: ['train'] }),
 *   ] });
 */
export class TrainingPipeline extends Construct implements IGrantable, IWatchablePipeline {
  public readonly watchKind = 'training-pipeline' as const;
  public readonly name: string;
  public readonly cluster: IGpuCluster;
  /** The spec as the agent receives it (Terraform references still unresolved). */
  public readonly spec: PipelineSpec;
  /** Where the spec is stored: `s3://` / `gs://` object, or the CronJob's mounted file on Kubernetes. */
  public readonly specUri: string;
  /**
   * The stored spec's id (contracts/pipeline-spec `specId`): first 16 hex digits of the SHA-256 of the
   * synthesized spec; part of the object key. Not the run's `specHash` (the resolved spec's full hash).
   */
  public readonly specId: string;
  /** Model store root: runs under `runs/<run-id>/`, the promoted model at `models/current`. */
  public readonly artifactsUri: string;
  /** The model registry promotions write, for a ModelEndpoint (`model: pipeline.model`). */
  public readonly model: IModelRegistry;
  public readonly schedule?: Schedule;
  /** The name the agent labels this pipeline's metrics with (`pipeline="..."`): the spec's name. */
  public get pipelineName(): string {
    return this.name;
  }
  /** Longest gap between scheduled runs, for freshness alarms. */
  public get schedulePeriodSeconds(): number | undefined {
    return this.schedule?.periodSeconds;
  }
  /** The scheduler's resource name (schedule, Cloud Scheduler job or CronJob), when scheduled. */
  public readonly scheduleName?: string;
  /** Steps run on the cluster's hosts: grants to the pipeline go to them. */
  public readonly grantPrincipal: GrantPrincipal;
  public readonly aws?: AwsTrainingPipelineResources;
  public readonly gcp?: GcpTrainingPipelineResources;
  public readonly kubernetes?: KubernetesTrainingPipelineResources;

  constructor(scope: Construct, id: string, props: TrainingPipelineProps) {
    super(scope, id);
    const { plan, kind, backend } = this.plan(props);
    this.name = plan.name;
    this.cluster = props.cluster;
    this.spec = plan.spec;
    this.specId = plan.specId;
    this.artifactsUri = plan.spec.artifactsUri;
    this.model = modelRegistry(plan.name, plan.spec.artifactsUri, props.cluster);
    this.schedule = props.schedule;
    this.grantPrincipal = props.cluster.grantPrincipal;

    const built = backend.build(this, props.cluster.target, props.cluster, plan);
    // The escape hatch of this target: `aws`, `gcp` or `kubernetes`.
    (this as { -readonly [K in TargetKind]?: unknown })[kind] = built.resources;
    const { specUri, scheduleName } = built;
    this.specUri = specUri;
    this.scheduleName = scheduleName;
    recordEdge(this, { to: props.cluster, kind: 'uses', label: 'runs on' });

    const outputs = new Construct(this, 'outputs');
    new TerraformOutput(outputs, 'spec-uri', { value: this.specUri, description: `${this.node.path}: pipeline spec read by mlinfra-agent run-pipeline` });
    new TerraformOutput(outputs, 'artifacts', { value: this.artifactsUri, description: `${this.node.path}: runs and promoted models` });
    if (scheduleName) new TerraformOutput(outputs, 'schedule', { value: scheduleName, description: `${this.node.path}: ${plan.schedule!.text} (${plan.schedule!.timezone})` });
  }

  /** Lets `grantee` read runs (`runs/*`) and promoted models (`models/*`): the cluster's artifacts read grant. */
  public grantRead(grantee: IGrantable): Grant {
    return this.cluster.grantArtifactsRead(grantee);
  }

  /** Validates props and builds the spec; throws before any resource exists. */
  private plan(props: TrainingPipelineProps): { plan: TrainingPipelinePlan; kind: TargetKind; backend: TrainingPipelineTarget } {
    if (!props) throw Errors.missing(this, 'props', 'an object with at least cluster and steps');
    const cluster = props.cluster;
    if (!cluster || typeof cluster !== 'object' || !('artifactsUri' in cluster)) throw Errors.missing(this, 'cluster', 'a GpuCluster');
    const kind = targetKind(this, 'cluster.target', cluster.target);
    const backend = TARGETS[kind]();
    if (TerraformStack.of(this) !== TerraformStack.of(cluster)) {
      throw Errors.conflict(this, 'cluster', cluster.node.path, 'a GpuCluster in the same stack as the pipeline',
        'is in another stack (the spec object and the schedule use its provider and bucket)');
    }

    const name = props.name ?? resourceName(this, { maxLength: 40 });
    if (!PIPELINE_NAME.test(name)) throw Errors.invalid(this, 'name', name, '2-40 characters [a-z0-9-], starting with a letter, not ending with -');

    const steps = props.steps;
    if (!Array.isArray(steps) || steps.length === 0) {
      throw Errors.missing(this, 'steps', 'at least one step: Step.run(name, argv, ...) or Step.deployIfBetter(name, ...)');
    }
    const oomClusters = new Map<string, IGpuCluster>();
    const specs = steps.map((s, i) => this.stepSpec(s, i, cluster, oomClusters, backend));

    // ---- the DAG: unique names, known dependencies, no cycles, one promotion fed by a run step
    const byName = new Map<string, PipelineStepSpec>();
    specs.forEach((s, i) => {
      if (byName.has(s.name)) {
        throw Errors.conflict(this, `steps[${i}].name`, s.name, 'unique step names',
          `repeats step "${s.name}" (steps[${specs.findIndex((o) => o.name === s.name)}] has it)`);
      }
      byName.set(s.name, s);
    });
    specs.forEach((s, i) => {
      for (const dep of s.after) {
        if (!byName.has(dep)) {
          throw Errors.invalid(this, `steps[${i}].after`, dep, `names of steps: ${[...byName.keys()].join(', ')}`,
            `of step "${s.name}" names "${dep}", which is not a step`);
        }
      }
    });
    const cycle = findCycle(specs);
    if (cycle) {
      throw Errors.invalid(this, 'steps', cycle.join(' -> '), 'a DAG: no step may depend on itself, directly or through others',
        `have a cycle through steps ${cycle.slice(0, -1).map((c) => `"${c}"`).join(', ')}`);
    }
    const promotes = specs.filter((s) => s.kind === 'deployIfBetter');
    if (promotes.length > 1) {
      throw Errors.conflict(this, 'steps', promotes.map((p) => p.name), 'at most one Step.deployIfBetter',
        `have ${promotes.length} promote steps (${promotes.map((p) => `"${p.name}"`).join(', ')}) racing for models/current`);
    }
    for (const p of promotes) {
      if (!p.after.some((d) => byName.get(d)?.kind === 'run')) {
        throw Errors.invalid(this, `steps[${specs.indexOf(p)}].after`, p.after,
          'at least one Step.run whose model and metrics it compares',
          `of promote step "${p.name}" names no run step${p.after.length ? ` (only ${p.after.map((d) => `"${d}"`).join(', ')})` : ''}`);
      }
    }

    // ---- params, artifacts, schedule
    const params: Record<string, string | number | boolean> = {};
    for (const [k, v] of Object.entries(props.params ?? {})) {
      if (!PARAM.test(k)) throw Errors.invalid(this, 'params key', k, 'names of letters, digits, _ . - starting with a letter or _');
      if (!['string', 'number', 'boolean'].includes(typeof v) || (typeof v === 'number' && !Number.isFinite(v))) {
        throw Errors.invalid(this, `params.${k}`, v, 'a string, a finite number or a boolean');
      }
      params[k] = typeof v === 'string' ? tfLiteral(v) : v;
    }
    const artifactsUri = (props.artifacts ?? `${cluster.artifactsUri}/pipelines/${name}`).replace(/\/+$/, '');
    if (props.artifacts !== undefined && !Token.isUnresolved(props.artifacts)) {
      const scheme = backend.artifactsScheme;
      if (backend.checkArtifacts) backend.checkArtifacts(this, props.artifacts, cluster);
      else if (!props.artifacts.startsWith(scheme) || props.artifacts.length <= scheme.length + 1 || /\s/.test(props.artifacts)) {
        throw Errors.invalid(this, 'artifacts', props.artifacts, `a ${scheme} URI (the cluster's hosts read and write it), e.g. ${cluster.artifactsUri}/pipelines/${name}`);
      }
    }
    const autostop = props.autostop ?? true;
    if (typeof autostop !== 'boolean') throw Errors.invalid(this, 'autostop', autostop, 'true or false');

    const timezone = props.timezone ?? 'UTC';
    if (props.timezone !== undefined && !validTimezone(timezone)) {
      throw Errors.invalid(this, 'timezone', timezone, 'an IANA time zone such as UTC or Europe/Paris');
    }
    let schedule: TrainingPipelinePlan['schedule'];
    if (props.schedule !== undefined) {
      if (!(props.schedule instanceof Schedule)) throw Errors.invalid(this, 'schedule', props.schedule, 'Schedule.cron(...) or Schedule.rate(...)');
      const s = props.schedule;
      backend.checkSchedule(this, s, timezone, cluster);
      const where = this.node.path;
      schedule = { aws: s.awsExpression, cron: (target) => s.toCron(where, target), timezone, text: s.toString() };
    }

    const spec: PipelineSpec = { version: PIPELINE_SPEC_VERSION, name, artifactsUri, steps: specs, params, autostop };
    const specJson = canonicalJson(spec);
    // Hash the text Terraform will hold (references as ${...}), which is stable between synths.
    const resolved = Tokenization.resolve(specJson, { scope: this, resolver: new DefaultTokenResolver(new StringConcat()), preparing: false }) as string;
    const id = specId(resolved);

    const runs = specs.filter((s): s is RunStepSpec => s.kind === 'run');
    const maxRunSeconds = runs.every((s) => s.timeoutSeconds !== undefined)
      ? runs.reduce((sum, s) => sum + s.timeoutSeconds! * (s.retries + 1), 0) : undefined;

    const plan: TrainingPipelinePlan = {
      name, spec, specJson, specId: id, specKey: `pipelines/${name}/spec-${id}.json`, schedule,
      startNodes: Math.max(1, cluster.nodes.min), oomClusters, maxRunSeconds,
    };
    return { plan, kind, backend };
  }

  private stepSpec(step: StepDefinition, i: number, cluster: IGpuCluster, oomClusters: Map<string, IGpuCluster>, backend: TrainingPipelineTarget): PipelineStepSpec {
    const at = `steps[${i}]`;
    if (!step || typeof step !== 'object' || (step.kind !== 'run' && step.kind !== 'deployIfBetter')) {
      throw Errors.invalid(this, at, step, 'Step.run(...) or Step.deployIfBetter(...)');
    }
    if (typeof step.name !== 'string' || !STEP_NAME.test(step.name)) {
      throw Errors.invalid(this, `${at}.name`, step.name, 'a step name: [a-z][a-z0-9_-]*, at most 63 characters');
    }
    const s = step.name;
    const o = step.options ?? {};
    const after = o.after ?? [];
    if (!Array.isArray(after) || after.some((a) => typeof a !== 'string')) {
      throw Errors.invalid(this, `${at}.after`, after, `a list of step names that "${s}" runs after`);
    }
    if (new Set(after).size !== after.length) throw Errors.invalid(this, `${at}.after`, after, `each step once`, `of step "${s}" repeats a step`);

    if (step.kind === 'deployIfBetter') {
      const d = step.options;
      if (!d || typeof d.metric !== 'string' || !METRIC.test(d.metric)) {
        throw Errors.invalid(this, `${at}.metric`, d?.metric, `the metrics.json key promote step "${s}" compares: letters, digits, _ . -`);
      }
      const higherIsBetter = d.higherIsBetter ?? true;
      if (typeof higherIsBetter !== 'boolean') throw Errors.invalid(this, `${at}.higherIsBetter`, higherIsBetter, 'true or false');
      return { kind: 'deployIfBetter', name: s, after: [...after], metric: d.metric, higherIsBetter };
    }

    const r = step.options ?? {};
    if (!Array.isArray(step.argv) || step.argv.length === 0 || step.argv.some((a) => typeof a !== 'string') || step.argv[0] === '') {
      throw Errors.invalid(this, `${at}.argv`, step.argv, `a non-empty command for step "${s}", e.g. ['python3', 'train.py']`);
    }
    const retries = r.retries ?? 0;
    if (!Number.isInteger(retries) || retries < 0 || retries > MAX_RETRIES) {
      throw Errors.outOfRange(this, `${at}.retries`, retries, `an integer from 0 to ${MAX_RETRIES} for step "${s}"`);
    }
    let timeoutSeconds: number | undefined;
    if (r.timeout !== undefined) {
      if (!(r.timeout instanceof Duration) || r.timeout.toSeconds() <= 0) {
        throw Errors.outOfRange(this, `${at}.timeout`, r.timeout instanceof Duration ? r.timeout.toString() : r.timeout, `a Duration above zero for step "${s}", e.g. Duration.hours(2)`);
      }
      timeoutSeconds = r.timeout.toSeconds();
    }
    const perNode = cluster.accelerator.count;
    const multi = multiNode(this, cluster, at, s, r);
    const gpus = multi?.gpusPerNode ?? r.gpus ?? Math.min(1, perNode);
    if (!Number.isInteger(gpus) || gpus < 0 || gpus > perNode) {
      throw Errors.outOfRange(this, `${at}.${multi ? 'gpusPerNode' : 'gpus'}`, gpus, `an integer from 0 to ${perNode} for step "${s}" (${cluster.accelerator.accelerator} x${perNode} per node)`);
    }
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(r.env ?? {})) {
      if (!ENV_NAME.test(k) || k.startsWith('MLINFRA_')) {
        throw Errors.invalid(this, `${at}.env`, k, `variable names [A-Za-z_][A-Za-z0-9_]* for step "${s}"; MLINFRA_* is reserved for the agent`);
      }
      if (SECRET_NAME.test(k)) {
        throw Errors.invalid(this, `${at}.env`, k,
          `plain settings only for step "${s}": the spec is stored as a readable object; read secrets from the cloud's secret store in the step`,
          'names what looks like a secret');
      }
      if (typeof v !== 'string') throw Errors.invalid(this, `${at}.env.${k}`, v, 'a string');
      env[k] = tfLiteral(v);
    }

    let onOom: RunStepSpec['onOom'];
    if (r.onOom !== undefined) {
      const big = r.onOom;
      const bigPath = big?.node?.path ?? String(big);
      if (!big || typeof big !== 'object' || !('agentUrl' in big)) throw Errors.invalid(this, `${at}.onOom`, big, 'a GpuCluster');
      if (big === cluster) throw Errors.conflict(this, `${at}.onOom`, bigPath, 'a different, bigger GpuCluster', `of step "${s}" names the pipeline's own cluster`);
      if (big.target !== cluster.target) {
        throw Errors.conflict(this, `${at}.onOom`, bigPath, `a GpuCluster on the pipeline's target (${cluster.target.node.path}), whose internal agent URL its hosts can reach`,
          `of step "${s}" is a cluster on another target (${big.target.node.path})`);
      }
      if (gpus > big.accelerator.count) {
        throw Errors.outOfRange(this, `${at}.gpus`, gpus, `at most ${big.accelerator.count} for step "${s}", the GPUs per node of its onOom cluster`);
      }
      const clusterName = resourceName(big, { maxLength: 40 });
      oomClusters.set(clusterName, big);
      onOom = {
        agentUrl: big.agentUrl, clusterName,
        tokenFile: backend.oomTokenFile(cluster, big, clusterName),
      };
    }
    return {
      kind: 'run', name: s, argv: step.argv.map(tfLiteral), env, after: [...after], retries, gpus,
      // written only for a multi-node step, so single-node specs (and their specId) stay as they were
      ...(multi ? { nodes: multi.nodes, gpusPerNode: gpus } : {}),
      ...(timeoutSeconds !== undefined ? { timeoutSeconds } : {}), ...(onOom ? { onOom } : {}),
    };
  }
}
