import * as os from 'node:os';
import * as path from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { checkLifecycleHook } from './cluster/aws-group';
import type { ClusterOptionsInput } from './cluster/options';

export type PreemptionProvider = 'aws' | 'gcp' | 'none';

/** Options of `mlinfra-agent serve`. Every field has a default; see `resolveServeOptions`. */
export interface ServeOptions {
  /** @default '127.0.0.1' */
  readonly host: string;
  /** @default 7070 (0 picks a free port; the chosen URL is logged as `listening`) */
  readonly port: number;
  /** @default - `$HOME/.mlinfra-agent` */
  readonly dataDir: string;
  /** Bearer token every route but /healthz requires. Required. */
  readonly token: string;
  /** @default - detected with `nvidia-smi -L`; 0 when it is missing */
  readonly gpus?: number;
  /** @default - the number of CPUs: how many CPU-only jobs (gpus 0) run at once */
  readonly maxCpuJobs: number;
  /** @default 0 - idle autostop disabled. Fractions are allowed (0.02 = 1.2 s). */
  readonly idleStopMinutes: number;
  /** @default - none: autostop only logs. Run with /bin/sh -c. */
  readonly stopCommand?: string;
  /** @default - none. Run with /bin/sh -c before the stop command. */
  readonly preStopCommand?: string;
  /** @default 'none' */
  readonly preemption: PreemptionProvider;
  /** @default 'http://169.254.169.254' */
  readonly awsImdsUrl: string;
  /** @default 'http://metadata.google.internal' */
  readonly gcpMetadataUrl: string;
  /** @default 5 */
  readonly preemptionPollSeconds: number;
  /** Seconds between SIGTERM and SIGKILL on cancel, timeout, preemption and shutdown. @default 30 */
  readonly graceSeconds: number;
  /** Size at which a job's log file is rotated (one rotated generation, `.1`, is kept). @default 64 MiB */
  readonly logMaxBytes: number;
  /** Largest accepted request body. @default 1 MiB */
  readonly bodyLimitBytes: number;
  /** Start with dispatch paused (jobs are accepted and journaled, none start). @default false */
  readonly paused: boolean;
  /** @default 'info' */
  readonly logLevel: string;
  /**
   * Serve the Prometheus registry token-free on `127.0.0.1:<port>` (`/metrics` only), for the host's
   * metrics agent (CloudWatch agent, Ops Agent). Never bound to `host`.
   * @default - off
   */
  readonly metricsLocalPort?: number;
  /** Move a journal refused at open (empty, foreign, damaged) aside and start with an empty one. @default false */
  readonly resetJournal: boolean;
  /** Run jobs as this user (name); the agent keeps its own rights. @default - the agent's user */
  readonly jobUser?: string;
  /** Submits get 429 + Retry-After while this many jobs are queued. @default 10000 */
  readonly maxQueued: number;
  /** Time a client has to send a whole request (headers and body). @default 30 */
  readonly requestTimeoutSeconds: number;
  /**
   * Dead-man's switch: with --queue, a host whose queue receives have failed for this long, with nothing
   * queued or running, runs the stop command (as idle autostop does). Without --queue it does nothing.
   * Fractions allowed. @default 0 - off (the GpuCluster constructs pass 30)
   */
  readonly deadManMinutes: number;
  /**
   * A running job whose GPUs all stayed under this utilisation (nvidia-smi) for the idle window
   * (--idle-stop-minutes, 30 when that is 0) is reported hung (log and metric; it is not killed).
   * @default 0 - off (the GpuCluster constructs pass 5)
   */
  readonly idleGpuUtilPercent: number;
  /** Lease jobs from the cluster's queue (serve --queue). @default - none: this host runs only what is submitted to it */
  readonly cluster?: ClusterOptionsInput;
  /** AWS: the termination lifecycle hook to complete after draining; also turns on scale-in protection while busy. @default - none */
  readonly lifecycleHook?: string;
  /** With lifecycleHook: the Auto Scaling group. @default - the instance's aws:autoscaling:groupName tag through IMDS */
  readonly asgName?: string;
}

/** Shortest token accepted: a guessable one would make the bearer check pointless. */
export const MIN_TOKEN_LENGTH = 16;

/** An invalid serve option (the CLI exits 2 on it, like on a usage error). */
export class ServeOptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ServeOptionError';
  }
}

export type ServeOptionsInput = Partial<ServeOptions> & { readonly token: string };

/** The defaults of `serve` (the CLI shows these in --help; nothing else states them). */
export const SERVE_DEFAULTS = {
  host: '127.0.0.1',
  port: 7070,
  idleStopMinutes: 0,
  preemption: 'none',
  awsImdsUrl: 'http://169.254.169.254',
  gcpMetadataUrl: 'http://metadata.google.internal',
  preemptionPollSeconds: 5,
  graceSeconds: 30,
  logMaxBytes: 64 * 1024 * 1024,
  bodyLimitBytes: 1024 * 1024,
  paused: false,
  logLevel: 'info',
  resetJournal: false,
  maxQueued: 10_000,
  requestTimeoutSeconds: 30,
  deadManMinutes: 0,
  idleGpuUtilPercent: 0,
} as const satisfies Partial<ServeOptions>;

export function defaultDataDir(): string {
  return path.join(os.homedir(), '.mlinfra-agent');
}

/** Merges the given options with the defaults, then checks them. Throws an Error naming the option. */
export function resolveServeOptions(input: ServeOptionsInput): ServeOptions {
  const defined = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) as ServeOptionsInput;
  const o: ServeOptions = {
    ...SERVE_DEFAULTS,
    dataDir: defaultDataDir(),
    maxCpuJobs: Math.max(1, os.cpus().length),
    ...defined,
  };
  const fail = (name: string, value: unknown, allowed: string): never => {
    throw new ServeOptionError(`invalid option ${name}=${JSON.stringify(value)}: ${allowed}`);
  };
  if (!o.token || !o.token.trim()) {
    fail('token', '', 'a token is required: pass --token-file FILE or set MLINFRA_AGENT_TOKEN');
  }
  const token = o.token.trim();
  // a token with whitespace inside could never match the "Authorization: Bearer <token>" header
  if (/\s/.test(token)) throw new ServeOptionError('invalid token: it contains whitespace (a space, tab or line break inside): no request could ever match it');
  if (token.length < MIN_TOKEN_LENGTH) throw new ServeOptionError(`invalid token: ${token.length} characters, at least ${MIN_TOKEN_LENGTH} are required`);
  if (!Number.isInteger(o.maxQueued) || o.maxQueued < 1) fail('--max-queued', o.maxQueued, 'an integer >= 1');
  if (!Number.isFinite(o.requestTimeoutSeconds) || o.requestTimeoutSeconds <= 0 || o.requestTimeoutSeconds > 3600) {
    fail('--request-timeout-seconds', o.requestTimeoutSeconds, 'a number > 0 and <= 3600');
  }
  if (o.jobUser !== undefined && !/^[a-z_][a-z0-9_.-]*\$?$/i.test(o.jobUser)) fail('--job-user', o.jobUser, 'a user name');
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) fail('--port', o.port, 'an integer 0..65535');
  if (o.gpus !== undefined && (!Number.isInteger(o.gpus) || o.gpus < 0 || o.gpus > 1024)) fail('--gpus', o.gpus, 'an integer 0..1024');
  if (!Number.isInteger(o.maxCpuJobs) || o.maxCpuJobs < 1) fail('--max-cpu-jobs', o.maxCpuJobs, 'an integer >= 1');
  if (!Number.isFinite(o.idleStopMinutes) || o.idleStopMinutes < 0) fail('--idle-stop-minutes', o.idleStopMinutes, 'a number >= 0 (0 disables)');
  if (!Number.isFinite(o.deadManMinutes) || o.deadManMinutes < 0 || o.deadManMinutes > 10080) fail('--dead-man-minutes', o.deadManMinutes, 'a number 0..10080 (0 disables)');
  if (!Number.isFinite(o.idleGpuUtilPercent) || o.idleGpuUtilPercent < 0 || o.idleGpuUtilPercent > 100) {
    fail('--idle-gpu-util-percent', o.idleGpuUtilPercent, 'a number 0..100 (0 disables)');
  }
  if (!['aws', 'gcp', 'none'].includes(o.preemption)) fail('--preemption', o.preemption, 'aws, gcp or none');
  if (!Number.isFinite(o.preemptionPollSeconds) || o.preemptionPollSeconds <= 0) fail('--preemption-poll-seconds', o.preemptionPollSeconds, 'a number > 0');
  if (!Number.isFinite(o.graceSeconds) || o.graceSeconds < 0) fail('--grace-seconds', o.graceSeconds, 'a number >= 0');
  if (!Number.isInteger(o.logMaxBytes) || o.logMaxBytes < 1024) fail('--log-max-bytes', o.logMaxBytes, 'an integer >= 1024');
  if (o.metricsLocalPort !== undefined && (!Number.isInteger(o.metricsLocalPort) || o.metricsLocalPort < 1 || o.metricsLocalPort > 65535)) {
    fail('--metrics-local-port', o.metricsLocalPort, 'an integer 1..65535');
  }
  if (!Number.isInteger(o.bodyLimitBytes) || o.bodyLimitBytes < 1024) fail('bodyLimitBytes', o.bodyLimitBytes, 'an integer >= 1024');
  checkLifecycleHook(o, fail);
  for (const [name, url] of [['--aws-imds-url', o.awsImdsUrl], ['--gcp-metadata-url', o.gcpMetadataUrl]] as const) {
    try {
      new URL(url);
    } catch {
      fail(name, url, 'an http(s) URL');
    }
  }
  return { ...o, token, dataDir: path.resolve(o.dataDir) };
}

const bounded = (name: string, max: number) => (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0 || n > max) throw new InvalidArgumentError(`${name} must be a number 0..${max} (0 disables)`);
  return n;
};

/** The host guards' flags of `serve` (kept here: cli.ts is at its size limit). */
export function addGuardOptions(cmd: Command): Command {
  return cmd
    .option('--dead-man-minutes <m>', 'with --queue: stop (the stop command) when the queue has been unreachable this long and nothing runs (0 = never)',
      bounded('--dead-man-minutes', 10080), SERVE_DEFAULTS.deadManMinutes)
    .option('--idle-gpu-util-percent <p>', 'report a running job hung when its GPUs all stay under this utilisation for the idle window (0 = never)',
      bounded('--idle-gpu-util-percent', 100), SERVE_DEFAULTS.idleGpuUtilPercent);
}

/** The guard options as `Agent.start` takes them, from commander's parsed options. */
export function guardOptionsOf(o: Record<string, unknown>): Pick<ServeOptions, 'deadManMinutes' | 'idleGpuUtilPercent'> {
  return { deadManMinutes: o.deadManMinutes as number, idleGpuUtilPercent: o.idleGpuUtilPercent as number };
}
