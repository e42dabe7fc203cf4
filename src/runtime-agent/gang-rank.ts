/**
 * `mlinfra-agent gang-rank -- COMMAND...`: one rank of a multi-node (gang) job, run by the cluster
 * worker as the rank's local job (cluster/gang.ts says how the gang is kept in the bucket).
 *
 * 1. Registers `<gang>/<A>/rank-<i>.json` (If-None-Match: a rank registers once per attempt). Rank 0's
 *    record carries the rendezvous endpoint (this host's address and a free port).
 * 2. Waits for all N registrations (the barrier) up to MLINFRA_GANG_TIMEOUT_SECONDS; on timeout it
 *    writes the attempt's abort record (kind `timeout`) and exits, so every rank stops and the gang fails.
 * 3. Runs the job: a `.py` script under `/usr/bin/python3 -m torch.distributed.run` (c10d rendezvous at
 *    rank 0, `--rdzv_id <gang>-<A>`); anything else as is, with the rendezvous in its env (it launches
 *    its own workers). Both get MLINFRA_NODE_RANK, MLINFRA_NNODES, MLINFRA_RDZV_ENDPOINT, MASTER_ADDR, MASTER_PORT.
 * 4. Watches `abort.json`: another rank failed, was preempted or the gang was cancelled -> SIGTERM the job.
 *    Its own job failing (or a SIGTERM from the agent: notice, shutdown) writes abort.json first.
 * Exit: the job's code; 75 when the attempt was aborted by another rank or superseded; 76 on the barrier timeout.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import { type AbortRecord, attemptUri, GANG_ENV, type GangRecord, writeAbort } from './cluster/gang';
import { Heartbeat, heartbeatMs, lostReason, Peers } from './gang-liveness';
import { joinUri, localPathOf, PreconditionFailed, Storage } from './storage/index';

/** The slowest the barrier polls (it starts at 250 ms). */
const BARRIER_MAX_POLL_MS = 2000;

export const EXIT_ABORTED = 75;
export const EXIT_TIMEOUT = 76;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface RankRegistration {
  readonly rank: number;
  readonly host: string;
  readonly addr: string;
  /** rank 0 only: the c10d rendezvous / MASTER_PORT */
  readonly port?: number;
  readonly at: string;
}

/** The address other hosts reach this one at: MLINFRA_GANG_ADDRESS, else the first non-internal IPv4, else loopback. */
export function advertisedAddress(env: NodeJS.ProcessEnv = process.env): string {
  if (env.MLINFRA_GANG_ADDRESS) return env.MLINFRA_GANG_ADDRESS;
  for (const list of Object.values(os.networkInterfaces())) {
    for (const i of list ?? []) if (i.family === 'IPv4' && !i.internal) return i.address;
  }
  return '127.0.0.1';
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '0.0.0.0', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** The command a rank runs: torchrun for a python script (one process per GPU, or one on CPU), else the job's own argv. */
export function rankCommand(argv: string[], o: { gang: string; attempt: number; nodes: number; gpusPerNode: number; rank: number; endpoint: string }): string[] {
  const script = argv.findIndex((a) => a.endsWith('.py'));
  const isPython = script === 0 || (script === 1 && /(^|\/)python3?(\.\d+)?$/.test(argv[0]));
  if (!isPython) return argv;
  return ['/usr/bin/python3', '-m', 'torch.distributed.run', '--nnodes', String(o.nodes), '--nproc_per_node', String(Math.max(1, o.gpusPerNode)),
    '--rdzv_backend', 'c10d', '--rdzv_endpoint', o.endpoint, '--rdzv_id', `${o.gang}-${o.attempt}`,
    // rank 0 hosts the c10d store; without is_host torch guesses from hostnames, which fails on loopback and NAT
    '--rdzv_conf', `is_host=${o.rank === 0 ? 'true' : 'false'}`, '--max_restarts', '0',
    // torch 1.13 on Python 3.11 (Debian's python3-torch) cannot parse the default "0" (Std IntFlag iteration skips NONE):
    // a map for a local rank that never exists leaves every rank at its default, and newer torch accepts it too
    '--redirects', '9:0', '--tee', '9:0',
    ...argv.slice(script)];
}

/** Runs one rank; resolves with the exit code the agent records. */
export async function gangRankMain(argv: string[], env: NodeJS.ProcessEnv = process.env, log: (s: string) => void = (s) => process.stderr.write(`[gang-rank] ${s}\n`)): Promise<number> {
  const gangId = env[GANG_ENV.id];
  const prefix = env[GANG_ENV.uri];
  const attempt = Number(env[GANG_ENV.attempt]);
  const rank = Number(env[GANG_ENV.nodeRank]);
  const nodes = Number(env[GANG_ENV.nnodes]);
  const gpusPerNode = Number(env[GANG_ENV.gpusPerNode] ?? 0);
  const timeoutS = Number(env[GANG_ENV.timeout] ?? 600);
  if (!gangId || !prefix || !(attempt >= 1) || !(rank >= 0) || !(nodes >= 1) || argv.length === 0) {
    log(`not a gang rank: ${GANG_ENV.id}, ${GANG_ENV.uri}, ${GANG_ENV.attempt}, ${GANG_ENV.nodeRank}, ${GANG_ENV.nnodes} and a command are required`);
    return 2;
  }
  const storage = new Storage();
  const dir = attemptUri(prefix, attempt);
  const host = `${os.hostname()}/${process.ppid}`;
  const abort = (kind: AbortRecord['kind'], reason: string): Promise<AbortRecord> => writeAbort(storage, dir, { kind, rank, host, reason, at: new Date().toISOString() });

  const gv = await storage.readVersioned(joinUri(prefix, 'gang.json'));
  const g = gv ? (JSON.parse(gv.text) as GangRecord) : null;
  if (!g || g.state !== 'queued' || g.attempts.length > attempt) {
    log(`gang ${gangId} attempt ${attempt} is superseded (gang ${g ? `${g.state}, attempt ${g.attempts.length}` : 'record missing'}): not started`);
    return EXIT_ABORTED;
  }
  const addr = advertisedAddress(env);
  const port = rank === 0 ? await freePort() : undefined;
  const reg: RankRegistration = { rank, host, addr, ...(port ? { port } : {}), at: new Date().toISOString() };
  try {
    await storage.writeIf(joinUri(dir, `rank-${rank}.json`), `${JSON.stringify(reg)}\n`, null);
  } catch (e) {
    if (!(e instanceof PreconditionFailed)) throw e;
    // a second holder of this rank: its first host was lost after registering; this attempt cannot meet
    // again. A lost host is not the program's failure: kind lost does not use a retry.
    const a = await abort('lost', `rank ${rank} registered twice in attempt ${attempt}: its first host was lost`);
    log(`aborted: ${a.reason}`);
    return EXIT_ABORTED;
  }
  log(`rank ${rank}/${nodes} of gang ${gangId} attempt ${attempt} registered from ${addr}; waiting for ${nodes} ranks (timeout ${timeoutS}s)`);

  // the barrier: all N registered, or an abort, or the timeout
  const deadline = Date.now() + timeoutS * 1000;
  let rank0: RankRegistration | undefined;
  // every rank lists the bucket: fast while the gang gathers, slower when it waits for hosts (a listing is a billed request)
  for (let pollMs = 250; ; pollMs = Math.min(BARRIER_MAX_POLL_MS, pollMs * 1.25)) {
    const objs = await storage.list(dir);
    if (objs.some((o) => o.key === 'abort.json')) {
      const a = await storage.readVersioned(joinUri(dir, 'abort.json'));
      log(`gang attempt ${attempt} aborted before it started: ${a ? (JSON.parse(a.text) as AbortRecord).reason : 'abort'}`);
      return EXIT_ABORTED;
    }
    const ranks = objs.filter((o) => /^rank-\d+\.json$/.test(o.key));
    if (ranks.length >= nodes) {
      const r0 = await storage.readVersioned(joinUri(dir, 'rank-0.json'));
      rank0 = r0 ? (JSON.parse(r0.text) as RankRegistration) : undefined;
      if (rank0) break;
    }
    if (Date.now() > deadline) {
      const have = ranks.map((o) => Number(/\d+/.exec(o.key)![0]));
      const missing = Array.from({ length: nodes }, (_, i) => i).filter((i) => !have.includes(i));
      const a = await abort('timeout', `gang timeout: ${have.length} of ${nodes} ranks registered within ${timeoutS}s (missing ranks ${missing.join(', ')}): the cluster could not give the gang ${nodes} hosts at once`);
      log(a.reason);
      return EXIT_TIMEOUT;
    }
    await sleep(Math.min(pollMs, Math.max(0, deadline - Date.now()) + 1));
  }
  const endpoint = `${rank0.addr}:${rank0.port}`;
  const cmd = rankCommand(argv, { gang: gangId, attempt, nodes, gpusPerNode, rank, endpoint });
  const childEnv: NodeJS.ProcessEnv = {
    ...env, [GANG_ENV.rdzv]: endpoint, MASTER_ADDR: rank0.addr, MASTER_PORT: String(rank0.port),
    // a file:// bucket is a shared mount: checkpoints go straight to the gang's per-rank prefix
    ...(env.MLINFRA_GANG_CHECKPOINT_URI ? { MLINFRA_CHECKPOINT_DIR: localPathOf(env.MLINFRA_GANG_CHECKPOINT_URI) } : {}),
  };
  if (env.MLINFRA_GANG_CHECKPOINT_URI) fs.mkdirSync(childEnv.MLINFRA_CHECKPOINT_DIR!, { recursive: true });
  log(`all ${nodes} ranks registered; rendezvous ${endpoint}; running ${cmd.slice(0, 3).join(' ')} ...`);
  // liveness: this rank beats; the others watch it (gang-liveness.ts)
  const beatMs = heartbeatMs(env);
  const heartbeat = new Heartbeat(storage, dir, rank, host, beatMs, log);
  await heartbeat.start();
  const peers = new Peers(storage, dir, nodes, rank, beatMs, Date.now() + BARRIER_MAX_POLL_MS);
  // in the rank's process group: the agent's own stop (SIGTERM, then SIGKILL to the group) reaches torchrun and its workers too
  const child = spawn(cmd[0], cmd.slice(1), { env: childEnv, stdio: 'inherit' });
  const exited = new Promise<number>((resolve) => {
    child.once('exit', (code, sig) => resolve(code ?? (sig ? 128 + (os.constants.signals[sig] ?? 15) : 1)));
    child.once('error', (e) => {
      log(`could not start ${cmd[0]}: ${e.message}`);
      resolve(127);
    });
  });
  let stopping: string | undefined;
  const stop = (why: string): void => {
    if (stopping) return;
    stopping = why;
    signal(child, 'SIGTERM');
    setTimeout(() => signal(child, 'SIGKILL'), 10_000).unref();
  };
  const onTerm = (): void => {
    // a notice or shutdown: tell the other ranks first, so their stop does not look like a failure of theirs
    void abort('preempted', `rank ${rank} on ${host} got SIGTERM (a notice or shutdown)`).catch(() => undefined).finally(() => stop('SIGTERM'));
  };
  process.once('SIGTERM', onTerm);
  let done = false;
  const watch = (async () => {
    let lastLook = Date.now();
    while (!done) {
      await sleep(500);
      const a = await storage.readVersioned(joinUri(dir, 'abort.json')).catch(() => null);
      if (a && !done) {
        const rec = JSON.parse(a.text) as AbortRecord;
        if (rec.rank !== rank) {
          log(`stopping: ${rec.reason}`);
          stop(rec.reason);
        }
        return;
      }
      // a peer's host gone while this rank's program still runs (a collective can hang for the
      // backend's timeout, 10 minutes or more): end the attempt now, as lost
      if (done || Date.now() - lastLook < beatMs) continue;
      lastLook = Date.now();
      const l = await peers.look().catch(() => null);
      if (!l || l.aborted || l.lost.length === 0 || done) continue;
      const rec = await abort('lost', lostReason(l.lost, `rank ${rank} stopped its program`)).catch(() => null);
      if (rec && !done) {
        log(`stopping: ${rec.reason}`);
        stop(rec.reason);
      }
      return;
    }
  })();
  const code = await exited;
  done = true;
  await watch;
  process.removeListener('SIGTERM', onTerm);
  if (code === 0 && !stopping) {
    // done before the beats stop: a peer never takes a finished rank for a lost one
    await storage.writeIf(joinUri(dir, `done-${rank}.json`), `${JSON.stringify({ rank, host, at: new Date().toISOString() })}\n`, null).catch((e: unknown) => {
      if (!(e instanceof PreconditionFailed)) throw e;
    }).finally(() => heartbeat.stop());
    return 0;
  }
  if (stopping) {
    heartbeat.stop();
    return stopping === 'SIGTERM' ? (code === 0 ? 143 : code) : EXIT_ABORTED;
  }
  // The program failed. Its cause may be a peer whose host went away (the collective broke): beat on
  // while the peers are looked at, so they can tell this rank is alive too.
  const lost = await peers.settle().catch(() => []);
  heartbeat.stop();
  const a = lost.length > 0
    ? await abort('lost', lostReason(lost, `rank ${rank} on ${host} then exited with code ${code}`))
    : await abort('exit', `rank ${rank} on ${host} exited with code ${code}`);
  log(`rank ${rank} failed (exit ${code}): every rank stops (${a.reason})`);
  return code;
}

function signal(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.exitCode !== null || child.pid === undefined) return;
  try {
    process.kill(child.pid, sig);
  } catch {
    // gone
  }
}
