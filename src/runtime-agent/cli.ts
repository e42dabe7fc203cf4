import { randomUUID } from 'node:crypto';
import { constants } from 'node:os';
import { Command, InvalidArgumentError, Option } from 'commander';
import pino from 'pino';
import { Agent, AGENT_VERSION } from './agent';
import { AgentClient, type JobJson } from './client';
import { actionOf, type CliIo, connectionOf, connectionOptions, readToken, write } from './cli-io';
import { AgentError } from './errors';
import { stdoutDestination } from './log-destination';
import { addGuardOptions, defaultDataDir, guardOptionsOf, SERVE_DEFAULTS as D, ServeOptionError } from './options';
import { loadPipelineSpec, PipelineSpecError, RUN_ID_PATTERN, runPipeline, runSummary, type StepRecord } from './pipeline';
import { enqueueRunFromCli, PIPELINE_ON_START_REMOVED } from './cluster/enqueue-cli';
import { addClusterCommand } from './cluster/client-cli';
import { addModelsCommand } from './registry/cli';
import { Storage } from './storage/index';
import { TERMINAL_STATES, type JobState } from './types';

export type { CliIo } from './cli-io';

const int = (name: string, min: number, max: number) => (v: string): number => {
  const n = Number(v);
  if (!/^-?\d+$/.test(v) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer ${min}..${max}`);
  return n;
};
const num = (name: string, min: number) => (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < min) throw new InvalidArgumentError(`${name} must be a number >= ${min}`);
  return n;
};

/** The exit code `submit --follow` ends with: the job's own, or 128+signal, 1 otherwise. */
export function exitCodeOf(job: JobJson): number {
  if (typeof job.exitCode === 'number') return job.exitCode;
  if (job.state === 'succeeded') return 0;
  const sig = job.signal ? (constants.signals as Record<string, number>)[job.signal] : undefined;
  return sig ? 128 + sig : 1;
}

export function buildCli(io: CliIo): Command {
  const program = new Command();
  program.name('mlinfra-agent').description('Durable GPU job runner: the agent (serve) and its client.').version(AGENT_VERSION);
  program.enablePositionalOptions();
  program.configureOutput({ writeOut: (s) => void io.stdout.write(s), writeErr: (s) => void io.stderr.write(s) });
  program.exitOverride((err) => {
    io.exit(err.exitCode);
    throw err;
  });

  addGuardOptions(program.command('serve'))
    .description('Run the agent: HTTP API, scheduler and durable journal.')
    .option('--host <host>', 'address to listen on', D.host)
    .option('--port <port>', 'port to listen on (0 picks a free one)', int('--port', 0, 65535), D.port)
    .option('--data-dir <dir>', 'journal, logs and work files (default ~/.mlinfra-agent)')
    .option('--token-file <file>', 'file holding the bearer token (or set MLINFRA_AGENT_TOKEN)')
    .option('--gpus <n>', 'GPU slots (default: detected with nvidia-smi -L, else 0)', int('--gpus', 0, 1024))
    .option('--max-cpu-jobs <n>', 'CPU-only jobs run at once (default: number of CPUs)', int('--max-cpu-jobs', 1, 100000))
    .option('--idle-stop-minutes <m>', 'run the stop command after this long idle (0 = never; fractions allowed)', num('--idle-stop-minutes', 0), D.idleStopMinutes)
    .option('--stop-command <cmd>', 'idle autostop action (/bin/sh -c)')
    .option('--pre-stop-command <cmd>', 'hook run before the stop command (/bin/sh -c)')
    .addOption(new Option('--preemption <provider>', 'watch for spot/preemption notices').choices(['aws', 'gcp', 'none']).default(D.preemption))
    .option('--aws-imds-url <url>', 'AWS instance metadata endpoint', D.awsImdsUrl).option('--lifecycle-hook <name>', 'AWS: drain on this termination lifecycle hook, then complete it; keep scale-in protection while busy').option('--asg-name <name>', 'with --lifecycle-hook: the Auto Scaling group (default: the instance tag through IMDS)')
    .option('--gcp-metadata-url <url>', 'GCP metadata endpoint', D.gcpMetadataUrl)
    .option('--preemption-poll-seconds <s>', 'metadata poll interval', num('--preemption-poll-seconds', 0.01), D.preemptionPollSeconds)
    .option('--grace-seconds <s>', 'seconds between SIGTERM and SIGKILL (cancel, timeout, preemption, shutdown)', num('--grace-seconds', 0), D.graceSeconds)
    .option('--log-max-bytes <n>', 'rotate a job log at this size (one old generation kept)', int('--log-max-bytes', 1024, Number.MAX_SAFE_INTEGER), D.logMaxBytes)
    .option('--paused', 'accept and journal jobs but start none (maintenance, benchmarks)', D.paused)
    // removed: a clear error naming the replacement (schedules enqueue runs on the cluster queue)
    .addOption(new Option('--pipeline-on-start <spec-uri>').hideHelp())
    // Checked by resolveServeOptions (exit 2 naming the option); a value that is not a number is passed as it is, for the message.
    .option('--metrics-local-port <port>', 'also serve /metrics token-free on 127.0.0.1:<port> (for the host metrics agent; off by default)',
      (v: string) => (/^\s*-?\d+\s*$/.test(v) ? Number(v) : v))
    .option('--reset-journal', 'when the journal is refused at open (empty, foreign, damaged), keep it aside and start with an empty one', D.resetJournal)
    .option('--job-user <name>', 'run jobs as this user (the agent needs the right to switch to it, e.g. root)')
    .option('--max-queued <n>', 'submits get 429 + Retry-After while this many jobs are queued', int('--max-queued', 1, 10_000_000), D.maxQueued)
    .option('--request-timeout-seconds <s>', 'time a client has to send a whole request', num('--request-timeout-seconds', 0.001), D.requestTimeoutSeconds)
    .option('--queue <url>', 'lease jobs from the cluster queue: an SQS queue URL or pubsub://PROJECT/TOPIC/SUBSCRIPTION (needs --cluster-artifacts)')
    .option('--dead-letter-queue <url>', 'where a job goes after --max-attempts attempts: an SQS queue URL or pubsub://PROJECT/TOPIC')
    .option('--cluster-artifacts <uri>', 'bucket prefix for cluster job records, checkpoints and logs (s3://, gs://, file://)')
    .option('--lease-seconds <s>', 'queue lease, extended while a job runs', num('--lease-seconds', 1))
    .option('--max-attempts <n>', 'attempts (starts on any host) before a job is dead-lettered', int('--max-attempts', 1, 100))
    .option('--checkpoint-seconds <s>', 'checkpoint upload interval while a job runs', num('--checkpoint-seconds', 0.001))
    .option('--log-ship-seconds <s>', 'log chunk upload interval', num('--log-ship-seconds', 0.001))
    .option('--queue-poll-seconds <s>', 'wait between empty receives', num('--queue-poll-seconds', 0))
    .option('--max-duration-seconds <s>', 'cap on one attempt of a cluster job (its own maxDurationSeconds is capped by it)', num('--max-duration-seconds', 0.001))
    .addOption(new Option('--log-level <level>', 'agent log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default(D.logLevel))
    .action(async (o: Record<string, unknown>) => {
      if (o.pipelineOnStart !== undefined) {
        await write(io.stderr, `mlinfra-agent: ${PIPELINE_ON_START_REMOVED}\n`);
        io.exit(2);
        return;
      }
      let token: string | undefined;
      try {
        token = readToken(o.tokenFile as string | undefined, io.env);
      } catch (e) {
        await write(io.stderr, `mlinfra-agent: cannot read --token-file: ${(e as Error).message}\n`);
        io.exit(2);
        return;
      }
      if (!token) {
        await write(io.stderr, 'mlinfra-agent: refusing to start without a token: pass --token-file FILE or set MLINFRA_AGENT_TOKEN\n');
        io.exit(2);
        return;
      }
      const logger = pino({ level: o.logLevel as string, base: { pid: process.pid } }, stdoutDestination());
      let agent: Agent;
      try {
        agent = await Agent.start({
          host: o.host as string, port: o.port as number, dataDir: o.dataDir as string | undefined, token,
          gpus: o.gpus as number | undefined, maxCpuJobs: o.maxCpuJobs as number | undefined,
          idleStopMinutes: o.idleStopMinutes as number, stopCommand: o.stopCommand as string | undefined,
          preStopCommand: o.preStopCommand as string | undefined, preemption: o.preemption as 'aws' | 'gcp' | 'none',
          awsImdsUrl: o.awsImdsUrl as string, gcpMetadataUrl: o.gcpMetadataUrl as string,
          preemptionPollSeconds: o.preemptionPollSeconds as number, graceSeconds: o.graceSeconds as number,
          logMaxBytes: o.logMaxBytes as number, paused: o.paused as boolean, logLevel: o.logLevel as string,
          metricsLocalPort: o.metricsLocalPort as number | undefined, lifecycleHook: o.lifecycleHook as string | undefined, asgName: o.asgName as string | undefined,
          resetJournal: o.resetJournal as boolean, jobUser: o.jobUser as string | undefined,
          maxQueued: o.maxQueued as number, requestTimeoutSeconds: o.requestTimeoutSeconds as number, ...guardOptionsOf(o),
          cluster: o.queue === undefined ? undefined : {
            queue: o.queue as string, deadLetterQueue: o.deadLetterQueue as string | undefined, artifacts: (o.clusterArtifacts as string | undefined) ?? '',
            leaseSeconds: o.leaseSeconds as number | undefined, maxAttempts: o.maxAttempts as number | undefined, checkpointSeconds: o.checkpointSeconds as number | undefined,
            logShipSeconds: o.logShipSeconds as number | undefined, pollSeconds: o.queuePollSeconds as number | undefined, maxDurationSeconds: o.maxDurationSeconds as number | undefined,
          },
        }, logger);
      } catch (e) {
        if (e instanceof ServeOptionError) {
          await write(io.stderr, `mlinfra-agent: ${e.message}\n`);
          io.exit(2);
          return;
        }
        logger.fatal({ err: e }, 'could not start');
        await write(io.stderr, `mlinfra-agent: could not start: ${(e as Error).message}\n`);
        io.exit(1);
        return;
      }
      let signals = 0;
      const onSignal = (sig: NodeJS.Signals): void => {
        signals++;
        if (signals > 1) {
          logger.warn({ sig }, 'second signal: exiting now');
          io.exit(130);
          return;
        }
        logger.info({ sig }, 'signal: graceful shutdown');
        void agent.close().then(() => io.exit(0), () => io.exit(1));
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    });

  const clientOpts = (c: Command): Command => connectionOptions(c);
  const clientOf = (o: Record<string, unknown>): AgentClient => {
    const { url, token } = connectionOf(o, io.env);
    return new AgentClient(url, token);
  };
  const run = actionOf(io, (e) => (e instanceof AgentError && e.code === 'not_supported' ? 2 : 1));
  const streamLogs = async (client: AgentClient, id: string, follow: boolean): Promise<void> => {
    // bytes as they are: a chunk may end inside a UTF-8 character
    for await (const chunk of await client.logs(id, follow)) await write(io.stdout, chunk);
  };

  clientOpts(program.command('submit'))
    .description('Submit a job; prints its id (with --follow: streams its log and exits with its exit code).')
    .option('--gpus <n>', 'GPUs wanted', int('--gpus', 0, 1024), 0)
    .option('--retries <n>', 'retries after a failure', int('--retries', 0, 100), 0)
    .option('--timeout <seconds>', 'kill the job after this many seconds', num('--timeout', 0.001))
    .addOption(new Option('--kind <kind>', 'job kind').choices(['train', 'batch']).default('train'))
    .option('--priority <n>', 'higher runs first', int('--priority', -1000, 1000), 0)
    .option('--name <name>', 'a label')
    .option('--cwd <dir>', 'working directory on the agent host (absolute)')
    .option('--env <KEY=VALUE...>', 'environment variables for the job')
    .option('--input <prefix>', 'batch: input prefix (file://, s3://, gs:// or a path)')
    .option('--output <prefix>', 'batch: output prefix')
    .option('--checkpoint-dir <dir>', 'checkpoint directory (path or URI)')
    .option('--artifact-uri <uri>', 'where MLINFRA_ARTIFACT_DIR is uploaded after success')
    .option('--follow', 'stream the log and exit with the job\'s exit code', false)
    .option('--idempotency-key <key>', 'resubmitting with the same key returns the first job (default: a fresh key, reused on retries)')
    .option('--nodes <n>', 'hosts the job runs on at once: a gang on the cluster queue, one rank per host, a .py script under torchrun', int('--nodes', 1, 256), 1)
    .option('--gpus-per-node <n>', 'with --nodes > 1: GPUs on each node', int('--gpus-per-node', 0, 64))
    .option('--gang-timeout-seconds <s>', 'with --nodes > 1: how long the gang waits for all its hosts before it fails', num('--gang-timeout-seconds', 1))
    .argument('<command...>', 'the command and its arguments (after --)')
    .passThroughOptions()
    .action(run(async (command: string[], o: Record<string, unknown>) => {
      const client = clientOf(o);
      const env: Record<string, string> = {};
      for (const kv of (o.env as string[] | undefined) ?? []) {
        const at = kv.indexOf('=');
        if (at <= 0) throw new AgentError(400, 'bad_request', `--env expects KEY=VALUE, got ${kv}`, 'env');
        env[kv.slice(0, at)] = kv.slice(at + 1);
      }
      const spec: Record<string, unknown> = {
        argv: command, env, gpus: o.gpus, retries: o.retries, kind: o.kind, priority: o.priority,
      };
      for (const [k, opt] of [['timeoutSeconds', 'timeout'], ['name', 'name'], ['cwd', 'cwd'], ['input', 'input'], ['output', 'output'],
        ['checkpointDir', 'checkpointDir'], ['artifactUri', 'artifactUri']] as const) {
        if (o[opt] !== undefined) spec[k] = o[opt];
      }
      if ((o.nodes as number) > 1) return (await import('./gang-client')).submitGangCli(o, io.env, readToken(o.tokenFile as string | undefined, io.env), spec, (t) => write(io.stdout, t));
      const job = await client.submit(spec, { idempotencyKey: (o.idempotencyKey as string | undefined) ?? randomUUID() });
      if (!o.follow) {
        await write(io.stdout, `${job.id}\n`);
        return 0;
      }
      await write(io.stderr, `${job.id}\n`);
      await streamLogs(client, job.id, true);
      let final = await client.get(job.id);
      for (let i = 0; i < 50 && !TERMINAL_STATES.includes(final.state as JobState); i++) {
        await new Promise((r) => setTimeout(r, 100));
        final = await client.get(job.id);
      }
      if (final.failure) await write(io.stderr, `job ${final.id} ${final.state}: ${final.failure.class}: ${final.failure.reason}\n`);
      return exitCodeOf(final);
    }));

  clientOpts(program.command('status'))
    .description('Print a job as JSON.')
    .argument('<job-id>')
    .action(run(async (id: string, o: Record<string, unknown>) => {
      await write(io.stdout, `${JSON.stringify(await clientOf(o).get(id), null, 2)}\n`);
      return 0;
    }));

  clientOpts(program.command('logs'))
    .description('Print a job\'s log (-f: follow until the job ends).')
    .option('-f, --follow', 'follow', false)
    .argument('<job-id>')
    .action(run(async (id: string, o: Record<string, unknown>) => {
      await streamLogs(clientOf(o), id, Boolean(o.follow));
      return 0;
    }));

  clientOpts(program.command('cancel'))
    .description('Cancel a job (queued: at once; running: SIGTERM, then SIGKILL after the grace period).')
    .argument('<job-id>')
    .action(run(async (id: string, o: Record<string, unknown>) => {
      const job = await clientOf(o).cancel(id);
      await write(io.stdout, `${job.id}\t${job.state}\n`);
      return 0;
    }));

  clientOpts(program.command('list'))
    .description('List jobs, newest first: ID STATE EXIT KIND COMMAND (tab separated).')
    .option('--state <state>', 'only jobs in this state')
    .option('--json', 'print {jobs: [...]} as JSON', false)
    .action(run(async (o: Record<string, unknown>) => {
      const jobs = await clientOf(o).list(o.state as string | undefined);
      if (o.json) await write(io.stdout, `${JSON.stringify({ jobs }, null, 2)}\n`);
      else for (const j of jobs) await write(io.stdout, `${j.id}\t${j.state}\t${j.exitCode ?? '-'}\t${String(j.kind)}\t${j.argv.join(' ')}\n`);
      return 0;
    }));

  // Kubernetes: the stateless gateway (Jobs/JobSets through Kueue) and a Job pod's entrypoint; loaded only when used.
  program.command('gateway').description('The agent API on Kubernetes: jobs become Kueue-admitted Jobs and JobSets.')
    .option('--host <host>', 'listen address', '0.0.0.0').option('--port <port>', 'port', int('--port', 0, 65535), 7070)
    .requiredOption('--config <file>', 'gateway config JSON').requiredOption('--token-file <file>', 'bearer token file')
    .action(async (o: { host: string; port: number; config: string; tokenFile: string }) => {
      const { serveGateway } = await import('./k8s/main');
      const gw = await serveGateway({ host: o.host, port: o.port, configFile: o.config, tokenFile: o.tokenFile, version: AGENT_VERSION });
      const stop = () => { void gw.close().then(() => io.exit(0), () => io.exit(1)); };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
  program.command('k8s-wrap').description('A Job pod\'s entrypoint: runs COMMAND with checkpoints, shards and failure classes.')
    .argument('<command...>').passThroughOptions()
    .action(async (command: string[]) => {
      const { k8sWrapMain } = await import('./k8s/main');
      io.exit(await k8sWrapMain(command));
    });

  program.command('gang-rank').description('One rank of a multi-node cluster job (run by the agent): barrier, torchrun, abort watch.')
    .argument('<command...>').passThroughOptions()
    .action(async (command: string[]) => io.exit(await (await import('./gang-rank')).gangRankMain(command)));

  program.command('run-pipeline')
    .description('Run a TrainingPipeline spec: its steps as jobs of the agent, then record the run (and promote) under its artifactsUri.')
    .argument('<spec-uri>', 'the spec: file://, s3://, gs:// or a local path')
    .option('--url <url>', 'agent URL (or MLINFRA_AGENT_URL); it must run on this host: steps share the local run directory')
    .option('--token-file <file>', 'file holding the bearer token (or MLINFRA_AGENT_TOKEN)')
    .option('--run-id <id>', 'run id (default: time-sortable, e.g. 20261124T203000Z-1a2b3c)')
    .option('--code-version <v>', 'code version recorded in versions.json and passed as MLINFRA_CODE_VERSION (or MLINFRA_CODE_VERSION)')
    .option('--data-version <v>', 'data version recorded in versions.json and passed as MLINFRA_DATA_VERSION (or MLINFRA_DATA_VERSION)')
    .option('--work-dir <dir>', 'local run directories: <dir>/<pipeline>/<run-id> (default ~/.mlinfra-agent/pipeline-runs)')
    .option('--follow', 'stream step logs and state changes to stderr, prefixed with [step]', false)
    .option('--queue <url>', 'do not run here: enqueue one run on the cluster queue (an SQS queue URL or pubsub://PROJECT/TOPIC/SUBSCRIPTION), as the schedule does')
    .addOption(new Option('--log-level <level>', 'runner log level (JSON lines on stderr)').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('warn'))
    .action(async (specUri: string, o: Record<string, unknown>) => {
      const fail = async (code: number, err: { toJSON(): unknown } | Error): Promise<void> => {
        const json = 'toJSON' in err && typeof err.toJSON === 'function' ? err.toJSON() : { error: { code: 'pipeline_error', message: (err as Error).message } };
        await write(io.stderr, `${JSON.stringify(json)}\n`);
        io.exit(code);
      };
      const storage = new Storage();
      let loaded: Awaited<ReturnType<typeof loadPipelineSpec>>;
      try {
        loaded = await loadPipelineSpec(specUri, storage);
      } catch (e) {
        await fail(e instanceof PipelineSpecError ? 2 : 1, e as Error);
        return;
      }
      if (o.queue !== undefined) {
        await enqueueRunFromCli(o.queue as string, loaded.spec.name, loaded.uri, io.env)
          .then((r) => write(io.stdout, `${JSON.stringify(r)}\n`), (e: unknown) => fail(1, e as Error));
        return;
      }
      const runId = o.runId as string | undefined;
      if (runId !== undefined && !RUN_ID_PATTERN.test(runId)) {
        await fail(2, new PipelineSpecError(`--run-id must match ${RUN_ID_PATTERN.source}`, [], 'runId'));
        return;
      }
      let token: string | undefined;
      try {
        token = readToken(o.tokenFile as string | undefined, io.env);
      } catch (e) {
        await fail(1, new AgentError(401, 'no_token', `cannot read --token-file: ${(e as Error).message}`));
        return;
      }
      if (!token) {
        await fail(1, new AgentError(401, 'no_token', 'no token: pass --token-file FILE or set MLINFRA_AGENT_TOKEN'));
        return;
      }
      const follow = Boolean(o.follow);
      const partial = new Map<string, string>();
      const onLog = (step: string, text: string): void => {
        const lines = ((partial.get(step) ?? '') + text).split('\n');
        partial.set(step, lines.pop() ?? '');
        if (lines.length > 0) io.stderr.write(lines.map((l) => `[${step}] ${l}\n`).join(''));
      };
      const onStep = (r: Readonly<StepRecord>): void => {
        const rest = partial.get(r.name);
        if (rest) io.stderr.write(`[${r.name}] ${rest}\n`);
        partial.delete(r.name);
        const detail = r.failure ? `: ${r.failure.class}: ${r.failure.reason}` : r.reason ? `: ${r.reason}` : '';
        io.stderr.write(`[${r.name}] ${r.state}${r.jobId ? ` (job ${r.jobId})` : ''}${detail}\n`);
      };
      const logger = pino({ level: o.logLevel as string }, io.stderr as unknown as pino.DestinationStream);
      try {
        const r = await runPipeline({
          spec: loaded.spec, rawSpec: loaded.raw, specUri: loaded.uri, runId,
          agentUrl: (o.url as string | undefined) ?? io.env.MLINFRA_AGENT_URL ?? 'http://127.0.0.1:7070', token,
          codeVersion: (o.codeVersion as string | undefined) ?? (io.env.MLINFRA_CODE_VERSION || null),
          dataVersion: (o.dataVersion as string | undefined) ?? (io.env.MLINFRA_DATA_VERSION || null),
          workDir: (o.workDir as string | undefined) ?? `${defaultDataDir()}/pipeline-runs`, storage, logger, env: io.env,
          ...(follow ? { onLog, onStep } : {}),
        });
        await write(io.stdout, `${JSON.stringify(runSummary(r))}\n`);
        io.exit(r.state === 'succeeded' ? 0 : 1);
      } catch (e) {
        await fail(e instanceof PipelineSpecError ? 2 : 1, e as Error);
      }
    });
  addClusterCommand(program, io);
  addModelsCommand(program, io);

  return program;
}

/** Entry point of the bundle. */
export async function main(argv: string[] = process.argv): Promise<void> {
  const io: CliIo = { env: process.env, stdout: process.stdout, stderr: process.stderr, exit: (code) => process.exit(code) };
  try {
    await buildCli(io).parseAsync(argv);
  } catch {
    // commander already reported the error and exitOverride called exit
  }
}

if (require.main === module) void main();
