import { constants } from 'node:os';
import type { Failure } from './types';

/** Lines in a job's output that mean the GPU (or host) ran out of memory. */
export const OOM_PATTERNS: readonly RegExp[] = [
  /CUDA out of memory/i,
  /torch\.(cuda\.)?OutOfMemoryError/,
  /CUDA_ERROR_OUT_OF_MEMORY/,
  /CUBLAS_STATUS_ALLOC_FAILED/,
  /RESOURCE_EXHAUSTED: Out of memory/,
  /^MemoryError\b/m,
];

export interface ExitFacts {
  readonly exitCode: number | null;
  readonly signal: string | null;
  /** The last bytes the job wrote to stderr (OOM messages are searched there). */
  readonly stderrTail: string;
  /** Why the agent itself stopped the process, if it did. */
  readonly stoppedBy?: 'cancel' | 'timeout' | 'preemption' | 'shutdown' | 'disk';
  /** Why the job's output could not be written (disk full, read-only): the job was stopped for it. */
  readonly diskError?: string;
  readonly timeoutSeconds?: number;
  /** Set when the process could not be started at all. */
  readonly spawnError?: string;
  /** True when the cgroup's oom_kill counter went up while the job ran. */
  readonly kernelOomKill?: boolean;
}

function signalName(signal: string | null): string {
  if (!signal) return 'a signal';
  const num = (constants.signals as Record<string, number>)[signal];
  return num ? `${signal} (${num})` : signal;
}

/** Classifies how a job's process ended. Returns null for success. */
export function classifyExit(f: ExitFacts): Failure | null {
  if (f.spawnError) return { class: 'exit', reason: `could not start the command: ${f.spawnError}` };
  if (f.stoppedBy === 'disk') return { class: 'disk', reason: `the job's log could not be written (${f.diskError ?? 'disk error'}): the job was stopped` };
  if (f.stoppedBy === 'cancel') return { class: 'cancelled', reason: 'cancelled by request' };
  if (f.stoppedBy === 'preemption') return { class: 'preempted', reason: 'the host is being preempted (spot/preemptible notice): the job was sent SIGTERM' };
  if (f.stoppedBy === 'shutdown') return { class: 'signal', reason: 'the agent shut down: the job was sent SIGTERM and will be re-queued when the agent restarts' };
  if (f.stoppedBy === 'timeout') return { class: 'timeout', reason: `exceeded its timeout of ${f.timeoutSeconds ?? '?'} s and was killed` };
  if (f.exitCode === 0) return null;
  const oomLine = findOomLine(f.stderrTail);
  if (oomLine) return { class: 'oom', reason: `out of memory: ${oomLine}` };
  if (f.kernelOomKill) return { class: 'oom', reason: 'killed by the kernel OOM killer (cgroup oom_kill counter increased)' };
  if (f.exitCode === 137) return { class: 'oom', reason: 'exited with code 137 (SIGKILL, usually the kernel OOM killer)' };
  if (f.signal === 'SIGKILL') return { class: 'oom', reason: 'killed by SIGKILL that the agent did not send: most likely the kernel OOM killer' };
  if (f.signal) return { class: 'signal', reason: `terminated by ${signalName(f.signal)}` };
  return { class: 'exit', reason: `exited with code ${f.exitCode}` };
}

export function findOomLine(text: string): string | null {
  for (const re of OOM_PATTERNS) {
    const m = re.exec(text);
    if (m) {
      const start = text.lastIndexOf('\n', m.index) + 1;
      const end = text.indexOf('\n', m.index);
      return text.slice(start, end === -1 ? undefined : end).trim().slice(0, 300);
    }
  }
  return null;
}
