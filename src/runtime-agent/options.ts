import * as os from 'node:os';
import * as path from 'node:path';

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
}

/** An invalid serve option (the CLI exits 2 on it, like on a usage error). */
export class ServeOptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ServeOptionError';
  }
}

export type ServeOptionsInput = Partial<ServeOptions> & { readonly token: string };

export function defaultDataDir(): string {
  return path.join(os.homedir(), '.mlinfra-agent');
}

/** Merges the given options with the defaults, then checks them. Throws an Error naming the option. */
export function resolveServeOptions(input: ServeOptionsInput): ServeOptions {
  const defined = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) as ServeOptionsInput;
  const o: ServeOptions = {
    host: '127.0.0.1',
    port: 7070,
    dataDir: defaultDataDir(),
    maxCpuJobs: Math.max(1, os.cpus().length),
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
    ...defined,
  };
  const fail = (name: string, value: unknown, allowed: string): never => {
    throw new ServeOptionError(`invalid option ${name}=${JSON.stringify(value)}: ${allowed}`);
  };
  if (!o.token || !o.token.trim()) {
    fail('token', '', 'a token is required: pass --token-file FILE or set MLINFRA_AGENT_TOKEN');
  }
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) fail('--port', o.port, 'an integer 0..65535');
  if (o.gpus !== undefined && (!Number.isInteger(o.gpus) || o.gpus < 0 || o.gpus > 1024)) fail('--gpus', o.gpus, 'an integer 0..1024');
  if (!Number.isInteger(o.maxCpuJobs) || o.maxCpuJobs < 1) fail('--max-cpu-jobs', o.maxCpuJobs, 'an integer >= 1');
  if (!Number.isFinite(o.idleStopMinutes) || o.idleStopMinutes < 0) fail('--idle-stop-minutes', o.idleStopMinutes, 'a number >= 0 (0 disables)');
  if (!['aws', 'gcp', 'none'].includes(o.preemption)) fail('--preemption', o.preemption, 'aws, gcp or none');
  if (!Number.isFinite(o.preemptionPollSeconds) || o.preemptionPollSeconds <= 0) fail('--preemption-poll-seconds', o.preemptionPollSeconds, 'a number > 0');
  if (!Number.isFinite(o.graceSeconds) || o.graceSeconds < 0) fail('--grace-seconds', o.graceSeconds, 'a number >= 0');
  if (!Number.isInteger(o.logMaxBytes) || o.logMaxBytes < 1024) fail('--log-max-bytes', o.logMaxBytes, 'an integer >= 1024');
  if (o.metricsLocalPort !== undefined && (!Number.isInteger(o.metricsLocalPort) || o.metricsLocalPort < 1 || o.metricsLocalPort > 65535)) {
    fail('--metrics-local-port', o.metricsLocalPort, 'an integer 1..65535');
  }
  if (!Number.isInteger(o.bodyLimitBytes) || o.bodyLimitBytes < 1024) fail('bodyLimitBytes', o.bodyLimitBytes, 'an integer >= 1024');
  for (const [name, url] of [['--aws-imds-url', o.awsImdsUrl], ['--gcp-metadata-url', o.gcpMetadataUrl]] as const) {
    try {
      new URL(url);
    } catch {
      fail(name, url, 'an http(s) URL');
    }
  }
  return { ...o, token: o.token.trim(), dataDir: path.resolve(o.dataDir) };
}
