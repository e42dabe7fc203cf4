/**
 * The TrainingPipeline spec: the one contract between the construct, which writes it at synth time
 * (stored as an object in the cluster's bucket, named by its `specId`), and `mlinfra-agent
 * run-pipeline`, which executes it. Both sides import this module: the types, the name rules, the
 * canonical JSON, the two hashes and the validator. Node built-ins only (it is bundled into the agent);
 * the schema library loads on the first validation, so the construct library never pays for it.
 */
import { createHash } from 'node:crypto';

export const PIPELINE_SPEC_VERSION = 1;

/**
 * Pipeline names: 2-40 characters [a-z0-9-], starting with a letter, not ending with `-`. The
 * strictest target sets it: names become Kubernetes object names with suffixes (`<name>-runner`,
 * at most 63), Cloud Scheduler jobs and the GCP service account `<name>-sch` (6-30 characters,
 * starting with a letter).
 */
export const PIPELINE_NAME = /^[a-z][a-z0-9-]{0,38}[a-z0-9]$/;
/**
 * Step names: 1-63 characters [a-z0-9_-], starting with a letter. They label jobs, metrics and logs
 * (`logs/<step>.log`) on every target and reach Kubernetes label values (at most 63 characters).
 */
export const STEP_NAME = /^[a-z][a-z0-9_-]{0,62}$/;
/** Environment variable names a step may set. */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A command step: runs as one agent job. */
export interface RunStepSpec {
  readonly kind: 'run';
  readonly name: string;
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** Names of steps that must succeed first. */
  readonly after: readonly string[];
  readonly retries: number;
  readonly timeoutSeconds?: number;
  /** GPUs of the step's job; for a multi-node step, GPUs on each node (the same as gpusPerNode). */
  readonly gpus: number;
  /**
   * Hosts the step runs on at once (a gang), one rank per host; absent means 1. See MULTI_NODE_CONTRACT:
   * every target (agent cluster queue, Kubernetes JobSet) keeps it.
   */
  readonly nodes?: number;
  /** With nodes > 1: GPUs each node's rank gets (0: CPU, one process per node). Absent: `gpus`. */
  readonly gpusPerNode?: number;
  /**
   * When an attempt is classified `oom`, resubmit the step to this (bigger) cluster's agent.
   * The token is read from `tokenFile` or the env var named by `tokenEnv` on the host running the pipeline.
   */
  readonly onOom?: { readonly agentUrl: string; readonly tokenFile?: string; readonly tokenEnv?: string; readonly clusterName?: string };
}

/** Promote the run's model to `models/current` only if `metric` beats the current model's. */
export interface DeployIfBetterStepSpec {
  readonly kind: 'deployIfBetter';
  readonly name: string;
  readonly after: readonly string[];
  /** Key in the run's metrics.json. */
  readonly metric: string;
  readonly higherIsBetter: boolean;
}

export type PipelineStepSpec = RunStepSpec | DeployIfBetterStepSpec;

export interface PipelineSpec {
  readonly version: typeof PIPELINE_SPEC_VERSION;
  /** Pipeline name: see PIPELINE_NAME. */
  readonly name: string;
  /**
   * Model store root (s3://, gs:// or file://). Each run writes `runs/<run-id>/`; promotion writes
   * `models/current` (JSON: {runId, metric, value, promotedAt}).
   */
  readonly artifactsUri: string;
  readonly steps: readonly PipelineStepSpec[];
  /** Free-form params recorded in the run's params.json and passed to steps as MLINFRA_PARAMS (JSON). */
  readonly params: Readonly<Record<string, string | number | boolean>>;
  /** Run the agent's stop command when the run ends (the schedule started this host from zero). */
  readonly autostop: boolean;
}

/**
 * What steps see (environment), in addition to the agent's job variables:
 * - MLINFRA_RUN_ID, MLINFRA_PIPELINE, MLINFRA_STEP
 * - MLINFRA_RUN_DIR: a local directory synced to `<artifactsUri>/runs/<run-id>/` when the run ends;
 *   a step writes `metrics.json` (merged across steps, flat {name: number}) and model files under
 *   `model/` there. Every step of a run sees the same directory, so later steps read earlier outputs.
 * - MLINFRA_PARAMS: the spec's params as JSON.
 * - MLINFRA_CODE_VERSION / MLINFRA_DATA_VERSION: from the run's options (git SHA or image digest;
 *   data snapshot id), recorded in the run directory.
 *
 * The run directory ends up with: model/ (whatever steps wrote), metrics.json, params.json,
 * versions.json ({code, data}), spec.json + spec-hash.txt, steps.json (per step: state, attempts,
 * failure, escalatedTo), logs/<step>.log, and promotion.json when a promote step ran.
 */
/**
 * The multi-node step contract (a step with `nodes` > 1), the same on every target so a pipeline moves
 * between them unchanged (the agent's cluster queue: `mlinfra-agent gang-rank`; Kubernetes: a JobSet):
 * - All N ranks start or none does: the gang waits for N hosts up to its timeout (agent: 600 s), then
 *   fails with a reason naming the missing ranks and holds nothing.
 * - One rank per host. Node rank i (0..N-1) is fixed for the gang's life; rank 0 hosts the rendezvous.
 * - A command whose program is a `.py` script (`x.py ...` or `python3 x.py ...`) runs under
 *   `/usr/bin/python3 -m torch.distributed.run --nnodes N --nproc_per_node max(1, gpusPerNode)
 *   --rdzv_backend c10d --rdzv_endpoint <rank-0 host>:<port> --rdzv_id <gang>-<attempt>`: torch's own
 *   RANK / WORLD_SIZE / LOCAL_RANK are set by torchrun (its group ranks come from the rendezvous and need
 *   not equal the node rank). Any other command runs as is, once per node, and launches its own workers.
 * - Environment on every node, both cases: MLINFRA_NODE_RANK (i), MLINFRA_NNODES (N), MLINFRA_GPUS_PER_NODE,
 *   MLINFRA_RDZV_ENDPOINT (`host:port` of rank 0), MASTER_ADDR and MASTER_PORT (the same host and port),
 *   MLINFRA_GANG_ID and MLINFRA_GANG_ATTEMPT (1, 2 ... per gang attempt, not per rank).
 * - One rank failing, its host lost or preempted stops every rank (SIGTERM, then SIGKILL after the
 *   grace) and re-runs the gang as a whole: a new attempt of all N ranks. Failures are charged to the
 *   step's `retries` once per gang attempt; preemptions are not (the cluster's attempt cap still applies).
 * - Checkpoints are per node: MLINFRA_CHECKPOINT_DIR of node rank i is restored from what node rank i
 *   saved in the previous attempt (in DDP every node holds the same state: have each node's LOCAL_RANK 0 save).
 * - A multi-node step reads and writes the bucket, not MLINFRA_RUN_DIR of the runner's host: its nodes are
 *   other hosts. MLINFRA_RUN_URI (the run's `<artifactsUri>/runs/<run-id>`) is set for it.
 */
export const MULTI_NODE_ENV = ['MLINFRA_NODE_RANK', 'MLINFRA_NNODES', 'MLINFRA_GPUS_PER_NODE', 'MLINFRA_RDZV_ENDPOINT', 'MASTER_ADDR', 'MASTER_PORT', 'MLINFRA_GANG_ID', 'MLINFRA_GANG_ATTEMPT'] as const;

export type PipelineStepState = 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped';

// ---------------------------------------------------------------------------------------------------------
// Canonical JSON and the two hashes

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return Object.fromEntries(Object.keys(o).sort().map((k) => [k, sortKeys(o[k])]));
  }
  return v;
}

/** `JSON.stringify` with object keys sorted at every level (arrays keep their order; undefined members dropped). */
export function canonicalJson(value: unknown, indent?: number): string {
  return JSON.stringify(sortKeys(value), null, indent);
}

/** The spec's content hash: sha256 (hex) of its canonical JSON. What a run records (run.json `specHash`, spec-hash.txt). */
export function specHash(spec: unknown): string {
  return createHash('sha256').update(canonicalJson(spec), 'utf8').digest('hex');
}

/**
 * The stored spec's id: the first 16 hex digits of the sha256 of the text stored (canonical JSON with
 * Terraform references still `${...}`); it names the object `pipelines/<name>/spec-<specId>.json`.
 */
export function specId(storedText: string): string {
  return createHash('sha256').update(storedText, 'utf8').digest('hex').slice(0, 16);
}

// ---------------------------------------------------------------------------------------------------------
// The validator: shape by JSON Schema (ajv, loaded on first use), graph rules (names, cycles) by hand

/** A spec that cannot be read or is not valid: `run-pipeline` exits 2 with `toJSON()` on stderr. */
export class PipelineSpecError extends Error {
  constructor(
    message: string,
    /** The steps the problem is about (empty when it is about the whole spec). */
    readonly steps: readonly string[] = [],
    readonly field?: string,
    readonly code: 'invalid_spec' | 'spec_unreadable' = 'invalid_spec',
  ) {
    super(message);
    this.name = 'PipelineSpecError';
  }

  toJSON(): { error: { code: string; message: string; field?: string; steps: string[] } } {
    return { error: { code: this.code, message: this.message, ...(this.field ? { field: this.field } : {}), steps: [...this.steps] } };
  }
}

const str = { type: 'string' } as const;
/** The spec's shape as JSON Schema (draft-07): the part of the contract a schema can say. */
export const PIPELINE_SPEC_SCHEMA = {
  type: 'object',
  required: ['version', 'name', 'artifactsUri', 'steps'],
  properties: {
    version: { const: PIPELINE_SPEC_VERSION },
    name: { type: 'string', pattern: PIPELINE_NAME.source },
    // Which schemes a host can read is the agent's to say (its storage modules).
    artifactsUri: { type: 'string', minLength: 1 },
    params: { type: 'object', additionalProperties: { type: ['string', 'number', 'boolean'] } },
    autostop: { type: 'boolean' },
    steps: {
      type: 'array', minItems: 1,
      items: {
        // allOf runs in order on every ajv version: name and kind first, then the kind's own fields.
        allOf: [{
          type: 'object',
          required: ['name', 'kind'],
          properties: {
            name: { type: 'string', pattern: STEP_NAME.source },
            after: { type: 'array', items: str },
            kind: { enum: ['run', 'deployIfBetter'] },
          },
        }, {
          if: { properties: { kind: { const: 'run' } } },
          then: {
            required: ['argv'],
            properties: {
              argv: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
              env: { type: 'object', propertyNames: { pattern: ENV_NAME.source }, additionalProperties: str },
              retries: { type: 'integer', minimum: 0, maximum: 100 },
              gpus: { type: 'integer', minimum: 0, maximum: 1024 },
              nodes: { type: 'integer', minimum: 1, maximum: 256 },
              gpusPerNode: { type: 'integer', minimum: 0, maximum: 64 },
              timeoutSeconds: { type: 'number', exclusiveMinimum: 0, maximum: 31_536_000 },
              onOom: {
                type: 'object', required: ['agentUrl'],
                properties: { agentUrl: { type: 'string', pattern: '^https?://' }, tokenFile: str, tokenEnv: str, clusterName: str },
              },
            },
          },
          else: {
            required: ['metric', 'higherIsBetter'],
            properties: { metric: { type: 'string', minLength: 1 }, higherIsBetter: { type: 'boolean' } },
          },
        }],
      },
    },
  },
} as const;

/** What each field must be, as `run-pipeline` reports it (the schema's errors are for machines). */
const STEP_RULES: Readonly<Record<string, string>> = {
  after: 'after must be an array of step names',
  argv: 'argv must be a non-empty array of strings',
  env: 'env must be an object of strings',
  retries: 'retries must be an integer 0..100',
  gpus: 'gpus must be an integer 0..1024',
  nodes: 'nodes must be an integer 1..256',
  gpusPerNode: 'gpusPerNode must be an integer 0..64',
  timeoutSeconds: 'timeoutSeconds must be a number > 0',
  onOom: 'onOom.agentUrl must be an http(s) URL',
  metric: 'metric must be a non-empty string',
  higherIsBetter: 'higherIsBetter must be a boolean',
};

interface SchemaError {
  readonly keyword: string;
  /** ajv 8 */
  readonly instancePath?: string;
  /** ajv 6 (the bundled agent carries ajv 8; other copies may be older) */
  readonly dataPath?: string;
  readonly params?: { readonly missingProperty?: string; readonly propertyName?: string };
}
type SchemaValidator = ((data: unknown) => boolean) & { errors?: SchemaError[] | null };
let compiled: SchemaValidator | undefined;

/** Compiles the schema on first use: the construct library imports this module without loading ajv. */
function schemaValidator(): SchemaValidator {
  if (!compiled) {
    const Ajv = require('ajv') as new (o: object) => { compile(s: object): SchemaValidator };
    const AjvClass = (Ajv as unknown as { default?: typeof Ajv }).default ?? Ajv;
    compiled = new AjvClass({ allErrors: false, strict: false }).compile(PIPELINE_SPEC_SCHEMA);
  }
  return compiled;
}

/** `/steps/1/retries` (ajv 8) or `.steps[1].retries` (ajv 6) as ['steps', '1', 'retries']. */
function pathOf(e: SchemaError): string[] {
  const p = e.instancePath ?? e.dataPath ?? '';
  return p.split(/[/.[\]'"]+/).filter(Boolean);
}

/** The first schema error as the message `run-pipeline` has always reported for it. */
function errorOf(raw: Record<string, unknown>, e: SchemaError): PipelineSpecError {
  const bad = (message: string, steps: string[] = [], field?: string) => new PipelineSpecError(message, steps, field);
  const [top, index, field, sub] = pathOf(e);
  const missing = e.params?.missingProperty;
  const key = top ?? missing;
  switch (key) {
    case 'version':
      return bad(`unsupported spec version ${JSON.stringify(raw.version) ?? 'undefined'}: this agent reads version ${PIPELINE_SPEC_VERSION}`, [], 'version');
    case 'name':
      return bad(`name must match ${PIPELINE_NAME.source}, got ${JSON.stringify(raw.name)}`, [], 'name');
    case 'artifactsUri':
      return bad('artifactsUri must be a file://, s3:// or gs:// URI', [], 'artifactsUri');
    case 'params':
      return index !== undefined ? bad(`params.${index} must be a string, number or boolean`, [], `params.${index}`)
        : bad('params must be an object of strings, numbers and booleans', [], 'params');
    case 'autostop':
      return bad('autostop must be a boolean', [], 'autostop');
    case 'steps':
      break;
    default:
      return bad('the spec must be a JSON object', [], 'spec');
  }
  if (index === undefined) return bad('steps must be a non-empty array', [], 'steps');
  const at = `steps[${index}]`;
  const step = (raw.steps as unknown[])[Number(index)] as Record<string, unknown> | null;
  const what = field ?? missing;
  if (!step || typeof step !== 'object' || Array.isArray(step)) return bad(`${at} must be an object`, [], at);
  if (what === 'name') return bad(`${at}.name must match ${STEP_NAME.source}, got ${JSON.stringify(step.name)}`, [], `${at}.name`);
  const name = step.name as string;
  if (what === 'kind') return bad(`step "${name}": kind must be "run" or "deployIfBetter", got ${JSON.stringify(step.kind)}`, [name], `${at}.kind`);
  if (what === 'env') {
    const env = step.env as Record<string, unknown>;
    const k = e.params?.propertyName ?? (sub ?? Object.keys(env ?? {}).find((x) => !ENV_NAME.test(x) || typeof env[x] !== 'string'));
    return k !== undefined ? bad(`step "${name}": env.${k} must be a string with a valid name`, [name], `${at}.env.${k}`)
      : bad(`step "${name}": ${STEP_RULES.env}`, [name], `${at}.env`);
  }
  if (what === 'onOom' && sub !== undefined && sub !== 'agentUrl') return bad(`step "${name}": onOom.${sub} must be a string`, [name], `${at}.onOom.${sub}`);
  const rule = STEP_RULES[what ?? ''] ?? `${what} is invalid`;
  return bad(`step "${name}": ${rule}`, [name], `${at}.${what === 'onOom' ? 'onOom.agentUrl' : what}`);
}

/**
 * Checks a parsed spec and returns it with defaults filled in (`after: []`, `env: {}`, `retries: 0`,
 * `gpus: 0`, `params: {}`, `autostop: false`). Throws PipelineSpecError naming the step(s) and field.
 */
export function validatePipelineSpec(raw: unknown): PipelineSpec {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new PipelineSpecError('the spec must be a JSON object', [], 'spec');
  const r = raw as Record<string, unknown>;
  const valid = schemaValidator();
  if (!valid(r)) throw errorOf(r, valid.errors![0]);

  // The graph: unique names, known dependencies, no cycles.
  const steps = (r.steps as Record<string, unknown>[]).map((st, i): PipelineStepSpec => {
    const after = [...new Set((st.after as string[] | undefined) ?? [])];
    const name = st.name as string;
    if ((r.steps as Record<string, unknown>[]).slice(0, i).some((o) => o.name === name)) {
      throw new PipelineSpecError(`duplicate step name "${name}"`, [name], `steps[${i}].name`);
    }
    if (st.kind === 'deployIfBetter') return { kind: 'deployIfBetter', name, after, metric: st.metric as string, higherIsBetter: st.higherIsBetter as boolean };
    const o = st.onOom as Record<string, string> | undefined;
    return {
      kind: 'run', name, argv: [...(st.argv as string[])], env: { ...(st.env as Record<string, string> | undefined) }, after,
      retries: (st.retries as number | undefined) ?? 0, gpus: (st.gpus as number | undefined) ?? 0,
      ...(st.timeoutSeconds !== undefined ? { timeoutSeconds: st.timeoutSeconds as number } : {}),
      ...(st.nodes !== undefined ? { nodes: st.nodes as number } : {}),
      ...(st.gpusPerNode !== undefined ? { gpusPerNode: st.gpusPerNode as number } : {}),
      ...(o ? {
        onOom: {
          agentUrl: o.agentUrl, ...(o.tokenFile !== undefined ? { tokenFile: o.tokenFile } : {}),
          ...(o.tokenEnv !== undefined ? { tokenEnv: o.tokenEnv } : {}), ...(o.clusterName !== undefined ? { clusterName: o.clusterName } : {}),
        },
      } : {}),
    };
  });
  const byName = new Map(steps.map((s) => [s.name, s]));
  steps.forEach((s, i) => {
    for (const d of s.after) {
      if (!byName.has(d)) throw new PipelineSpecError(`step "${s.name}" runs after unknown step "${d}"`, [s.name, d], `steps[${i}].after`);
    }
  });
  // Depth-first search; a back edge closes a cycle, reported as "a -> b -> a" (a runs after b).
  const color = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const visit = (n: string): void => {
    color.set(n, 1);
    stack.push(n);
    for (const d of byName.get(n)!.after) {
      if (color.get(d) === 1) {
        const cycle = [...stack.slice(stack.indexOf(d)), d];
        throw new PipelineSpecError(`steps form a dependency cycle: ${cycle.join(' -> ')} ("x -> y": x runs after y)`, [...new Set(cycle)], 'steps');
      }
      if (!color.has(d)) visit(d);
    }
    stack.pop();
    color.set(n, 2);
  };
  for (const s of steps) if (!color.has(s.name)) visit(s.name);

  return {
    version: PIPELINE_SPEC_VERSION, name: r.name as string, artifactsUri: r.artifactsUri as string, steps,
    params: { ...(r.params as Record<string, string | number | boolean> | undefined) }, autostop: (r.autostop as boolean | undefined) ?? false,
  };
}
