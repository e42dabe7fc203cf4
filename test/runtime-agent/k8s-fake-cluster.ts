/**
 * What Kueue, the Job controller and the kubelet would do, for tests, on top of FakeApiServer: admits
 * suspended batch/v1 Jobs in creation order while their GPUs fit the quota (Kueue's ClusterQueue),
 * creates one pod per Job and runs its container command as a real local process (the agent's
 * k8s-wrap, the job's program), streams its output into the pod log, and records the exit in the pod's
 * and the Job's status (terminated state with the wrapper's termination message; Complete / Failed).
 * Paths the pod would see (the agent, Node.js, the artifacts volume) map to local ones through `paths`.
 * With `podLocal`, paths such as the run directory are each pod's own disk, as on a real cluster.
 * Not modelled: JobSets, retries (backoffLimit), Indexed Jobs, deadlines, node scheduling.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FakeApiServer } from './k8s-fake-apiserver';

export interface FakeClusterOptions {
  readonly namespace: string;
  /** nvidia.com/gpu the ClusterQueue admits at once. */
  readonly quotaGpus: number;
  /** Pod path -> local path, applied to the start of every command argument and env value. */
  readonly paths: Readonly<Record<string, string>>;
  /** The job image's working directory (where relative script paths resolve). */
  readonly workingDir: string;
  /** Where termination logs are written (one file per pod). */
  readonly scratch: string;
  /**
   * Paths that are each pod's own disk (e.g. the runner's run directory, which a real pod does not
   * share): mapped to `<scratch>/pods/<pod>/<path>`, empty when the pod starts.
   */
  readonly podLocal?: readonly string[];
}

export class FakeCluster {
  private readonly started = new Set<string>();
  private readonly running = new Map<string, number>();
  private timer?: NodeJS.Timeout;
  private clock = Date.parse('2026-01-01T01:00:00Z');
  /** Job names in the order they were admitted. */
  readonly admitted: string[] = [];
  /** Most GPUs in use at once. */
  peakGpus = 0;

  constructor(private readonly api: FakeApiServer, private readonly o: FakeClusterOptions) {}

  start(): void {
    this.timer = setInterval(() => this.tick(), 20);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private map(s: string, pod?: string): string {
    for (const from of pod ? this.o.podLocal ?? [] : []) {
      if (s === from || s.startsWith(`${from}/`)) return path.join(this.o.scratch, 'pods', pod!, s);
    }
    for (const [from, to] of Object.entries(this.o.paths)) {
      if (s === from || s.startsWith(`${from}/`)) return to + s.slice(from.length);
      if (s.startsWith(`file://${from}`)) return `file://${to}${s.slice(`file://${from}`.length)}`;
    }
    return s;
  }

  private gpusOf(job: any): number {
    return Number(job.spec.template.spec.containers[0].resources?.requests?.['nvidia.com/gpu'] ?? 0);
  }

  private tick(): void {
    const jobs = [...this.api.objects.entries()]
      .filter(([k]) => k.startsWith(`apis/batch/v1/jobs/${this.o.namespace}/`)).map(([, v]) => v)
      .filter((j) => j.spec?.suspend === true && !this.started.has(j.metadata.name))
      .sort((a, b) => String(a.metadata.creationTimestamp).localeCompare(String(b.metadata.creationTimestamp)));
    for (const job of jobs) {
      const busy = [...this.running.values()].reduce((a, b) => a + b, 0);
      const gpus = this.gpusOf(job);
      // Kueue: admit only within the quota; the rest stay suspended (queued) until GPUs free up.
      if (busy + gpus > this.o.quotaGpus) continue;
      this.started.add(job.metadata.name);
      this.running.set(job.metadata.name, gpus);
      this.peakGpus = Math.max(this.peakGpus, busy + gpus);
      this.admitted.push(job.metadata.name);
      this.run(job);
    }
  }

  private now(): string {
    return new Date(this.clock += 1000).toISOString();
  }

  private run(job: any): void {
    const ns = this.o.namespace;
    const name = job.metadata.name as string;
    // A new spec object: the recorded create call keeps what the gateway sent.
    job.spec = { ...job.spec, suspend: false };
    job.status = { active: 1, startTime: this.now() };
    const podName = `${name}-x7k2p`;
    const pod: any = {
      metadata: { name: podName, namespace: ns, labels: { ...job.spec.template.metadata.labels }, creationTimestamp: this.now() },
      spec: job.spec.template.spec, status: { phase: 'Running' },
    };
    this.api.put('api/v1', 'pods', pod);
    const c = job.spec.template.spec.containers[0];
    const termLog = path.join(this.o.scratch, `${podName}.termination-log`);
    // The image's PATH: its own python3 (/usr/bin), not this machine's user-level shims.
    const env: Record<string, string> = { PATH: '/usr/local/bin:/usr/bin:/bin', MLINFRA_TERMINATION_LOG: termLog };
    for (const e of c.env ?? []) if (typeof e.value === 'string') env[e.name] = this.map(e.value, podName);
    const argv = (c.command as string[]).map((a) => this.map(a, podName));
    const p = spawn(argv[0], argv.slice(1), { cwd: c.workingDir ? this.map(c.workingDir) : this.o.workingDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const log = (b: Buffer) => this.api.appendLog(ns, podName, b.toString('utf8'));
    p.stdout.on('data', log);
    p.stderr.on('data', log);
    p.on('close', (code) => {
      let message = '';
      try { message = fs.readFileSync(termLog, 'utf8'); } catch { /* killed before the wrapper wrote it */ }
      const exitCode = code ?? 137;
      pod.status = {
        phase: exitCode === 0 ? 'Succeeded' : 'Failed',
        containerStatuses: [{ name: 'job', state: { terminated: { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', message } } }],
      };
      const at = this.now();
      job.status = exitCode === 0
        ? { succeeded: 1, startTime: job.status.startTime, completionTime: at, conditions: [{ type: 'Complete', status: 'True', lastTransitionTime: at }] }
        : { failed: 1, startTime: job.status.startTime, conditions: [{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit', lastTransitionTime: at }] };
      this.api.endLog(ns, podName);
      this.running.delete(name);
    });
  }
}
