/**
 * The failover harness (used by queue-failover.slow.test.ts and bench/queue.mjs through ts-register):
 * three agents on loopback sharing one queue and one bucket, each with its own fake IMDS so a
 * spot notice can be sent to one host. Hosts that die are replaced, like an autoscaling group does.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { pidAlive, startAgent, tmpDir, waitFor, writeExecutable, type AgentHandle } from './helpers';
import type { QueueFixture } from './queue-helpers';

/** A fake AWS IMDS (v2) whose spot/instance-action answers 404 until `notify()`. */
export interface Imds {
  readonly url: string;
  notify(): void;
  close(): Promise<void>;
}

export async function startImds(): Promise<Imds> {
  let noticed = false;
  const srv = http.createServer((req, res) => {
    if (req.method === 'PUT' && req.url === '/latest/api/token') return void res.end('tok');
    if (req.url === '/latest/meta-data/spot/instance-action' && noticed) {
      return void res.end(JSON.stringify({ action: 'terminate', time: new Date(Date.now() + 120_000).toISOString() }));
    }
    res.statusCode = 404;
    res.end();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`,
    notify: () => void (noticed = true),
    close: () => new Promise((r) => { srv.closeAllConnections(); srv.close(() => r()); }),
  };
}

export interface Host {
  readonly agent: AgentHandle;
  readonly imds: Imds;
}

/**
 * A resumable training job: steps of STEP_SECONDS, a checkpoint (tmp + rename) after each, at least
 * STEPS of them and then until the test calls `finish(id)`;
 * a checkpoint and exit 143 on SIGTERM; appends `start`/`done` lines to shared files so the test
 * counts runs, and writes its process group to pids/ so a test can kill it with its "host".
 */
export function writeTrainScript(dir: string): string {
  return writeExecutable(path.join(dir, 'train.py'), `#!/usr/bin/env python3
import os, signal, sys, time
d = os.environ["MLINFRA_CHECKPOINT_DIR"]; job = os.environ["MLINFRA_CLUSTER_JOB_ID"]; attempt = os.environ["MLINFRA_CLUSTER_ATTEMPT"]
shared = os.environ["SHARED"]; steps = int(os.environ.get("STEPS", "10")); step_s = float(os.environ.get("STEP_SECONDS", "0.1"))
ck = os.path.join(d, "step")
start = int(open(ck).read()) if os.path.exists(ck) else 0
def line(name, text):
    with open(os.path.join(shared, name), "a") as f: f.write(text + "\\n")
def save(step):
    tmp = ck + ".tmp"
    with open(tmp, "w") as f: f.write(str(step))
    os.replace(tmp, ck)
step = start
def term(*_):
    save(step); line("terminated.log", "%s %s %d" % (job, attempt, step)); sys.exit(143)
signal.signal(signal.SIGTERM, term)
open(os.path.join(shared, "pids", "%s-%s" % (job, attempt)), "w").write(str(os.getpgid(0)))
line("starts.log", "%s %s %d %.3f" % (job, attempt, start, time.time()))
if os.environ.get("POISON"):
    p = os.getppid()
    while p > 1:  # the agent: the first ancestor running "mlinfra-agent... serve"
        args = open("/proc/%d/cmdline" % p, "rb").read().split(b"\\x00")
        if any(b"mlinfra-agent" in a for a in args) and b"serve" in args:
            os.kill(p, signal.SIGKILL); break
        p = int(open("/proc/%d/stat" % p).read().rsplit(")", 1)[1].split()[1])
    time.sleep(5); sys.exit(1)
finish = os.path.join(shared, "finish", job)
while step < steps or not os.path.exists(finish):  # runs on until the test lets it finish
    time.sleep(step_s); step += 1; save(step)
line("done.log", "%s %s %d" % (job, attempt, start))
`);
}

/** Three hosts (by default) on one queue and one bucket; `ensure()` replaces the dead or retired ones. */
export class Cluster {
  readonly hosts: Host[] = [];
  readonly shared: string;
  readonly script: string;

  constructor(readonly q: QueueFixture, readonly artifacts: string, readonly env: Record<string, string>, readonly size = 3, readonly extraArgs: string[] = []) {
    this.shared = tmpDir('mlinfra-failover-');
    fs.mkdirSync(path.join(this.shared, 'pids'));
    fs.mkdirSync(path.join(this.shared, 'finish'));
    this.script = writeTrainScript(this.shared);
  }

  async ensure(): Promise<void> {
    for (let i = this.hosts.length - 1; i >= 0; i--) {
      const h = this.hosts[i];
      if (h.agent.proc.exitCode !== null || h.agent.proc.signalCode !== null) {
        this.hosts.splice(i, 1);
        await h.imds.close();
      }
    }
    while (this.hosts.length < this.size) {
      const imds = await startImds();
      const agent = await this.start(imds);
      this.hosts.push({ agent, imds });
    }
  }

  /**
   * Starts one host. A start that times out on a loaded machine is tried again (twice), after the
   * slow agent (found by its own fresh data dir) is killed, so it cannot lease jobs unseen.
   */
  private async start(imds: Imds, tries = 3): Promise<AgentHandle> {
    for (let i = 1; ; i++) {
      const dataDir = tmpDir();
      try {
        return await this.startOnce(imds, dataDir);
      } catch (e) {
        for (const pid of fs.readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
          try {
            if (fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(dataDir)) process.kill(Number(pid), 'SIGKILL');
          } catch {
            // gone
          }
        }
        if (i >= tries || !/timed out/.test((e as Error).message)) throw e;
      }
    }
  }

  private startOnce(imds: Imds, dataDir: string): Promise<AgentHandle> {
    {
      return startAgent({
        dataDir,
        args: ['--queue', this.q.url, '--dead-letter-queue', this.q.deadLetterUrl, '--cluster-artifacts', this.artifacts, '--lease-seconds', '3',
          '--checkpoint-seconds', '0.2', '--log-ship-seconds', '0.5', '--queue-poll-seconds', '0.2', '--max-attempts', '3', '--max-cpu-jobs', '2',
          '--preemption', 'aws', '--aws-imds-url', imds.url, '--preemption-poll-seconds', '0.1', ...this.extraArgs],
        env: { ...this.q.env, ...this.env },
      });
    }
  }

  hostOf(pid: number): Host | undefined {
    return this.hosts.find((h) => h.agent.pid === pid);
  }

  /** Submits a train job through a host (the first one by default); returns its cluster id. */
  async submit(env: Record<string, string> = {}, via = this.hosts[0]): Promise<string> {
    const r = await via.agent.api('POST', '/v1/cluster/jobs', { argv: ['/usr/bin/python3', this.script], env: { SHARED: this.shared, ...env } });
    if (r.status !== 201) throw new Error(`cluster submit answered ${r.status}: ${r.text}`);
    return r.json.id as string;
  }

  async job(id: string): Promise<any> {
    for (const h of this.hosts) {
      try {
        const r = await h.agent.api('GET', `/v1/cluster/jobs/${id}`);
        if (r.status === 200) return r.json;
      } catch {
        // that host is gone: ask another
      }
    }
    return undefined;
  }

  lines(name: string): string[][] {
    const f = path.join(this.shared, name);
    return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').trim().split('\n').filter(Boolean).map((l) => l.split(' ')) : [];
  }

  /** Waits until attempt `attempt` of `id` has started and reached `minStep` checkpointed steps; returns its host. */
  async running(id: string, attempt: number, minStep: number, timeoutMs = 60_000): Promise<{ host: Host; pgid: number; startedAt: number }> {
    const start = await waitFor(`attempt ${attempt} of ${id} to start`, () => this.lines('starts.log').find((l) => l[0] === id && l[1] === String(attempt)), timeoutMs, 20);
    const j = await waitFor(`attempt ${attempt} of ${id} in the bucket`, async () => {
      const rec = await this.job(id);
      return rec?.attempts?.[attempt - 1] ? rec : undefined;
    }, timeoutMs, 50);
    const pid = Number(String(j.attempts[attempt - 1].host).split('/').pop());
    const host = this.hostOf(pid);
    if (!host) throw new Error(`attempt ${attempt} of ${id} runs on ${j.attempts[attempt - 1].host}, not one of ours`);
    // a checkpoint uploaded after the attempt has run `minStep` steps
    const after = (Number(start[3]) + minStep * 0.1) * 1000;
    await waitFor(`a checkpoint of attempt ${attempt} of ${id} past step ${minStep}`, async () => {
      const rec = await this.job(id);
      return rec?.checkpoint?.savedAt && Date.parse(rec.checkpoint.savedAt) > after;
    }, timeoutMs, 50);
    const pgid = Number(fs.readFileSync(path.join(this.shared, 'pids', `${id}-${attempt}`), 'utf8'));
    return { host, pgid, startedAt: Number(start[3]) };
  }

  /** Lets the job end (after its minimum steps). */
  finish(id: string): void {
    fs.writeFileSync(path.join(this.shared, 'finish', id), '');
  }

  /** A spot reclaim without notice: the agent and its jobs die at once (kill -9). */
  async kill(host: Host, pgid: number): Promise<void> {
    await host.agent.kill('SIGKILL');
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // already gone
    }
    await waitFor('the job processes to die', () => !pidAlive(pgid), 5000, 20);
  }

  async close(): Promise<void> {
    await Promise.all(this.hosts.map((h) => h.agent.kill('SIGTERM')));
    await Promise.all(this.hosts.map((h) => h.imds.close()));
    this.hosts.length = 0;
  }
}
