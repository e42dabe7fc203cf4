import { execFile, execFileSync } from 'node:child_process';

export interface GpuInventory {
  readonly count: number;
  /** 'flag' (--gpus N), 'nvidia-smi' or 'none'. */
  readonly source: 'flag' | 'nvidia-smi' | 'none';
  readonly names: readonly string[];
}

/** `--gpus N` wins; otherwise counts the `GPU i: NAME (UUID: ...)` lines of `nvidia-smi -L`. */
export function detectGpus(flag: number | undefined, env: NodeJS.ProcessEnv = process.env): GpuInventory {
  if (flag !== undefined) return { count: flag, source: 'flag', names: [] };
  try {
    const out = execFileSync('nvidia-smi', ['-L'], { encoding: 'utf8', timeout: 10_000, env, stdio: ['ignore', 'pipe', 'ignore'] });
    const names = out.split('\n').map((l) => /^GPU (\d+): (.*?)(?: \(UUID: .*\))?\s*$/.exec(l.trim())).filter((m) => m !== null).map((m) => m![2]);
    return names.length ? { count: names.length, source: 'nvidia-smi', names } : { count: 0, source: 'none', names: [] };
  } catch {
    return { count: 0, source: 'none', names: [] };
  }
}

/**
 * Utilisation (percent) of each GPU by index, from
 * `nvidia-smi --query-gpu=index,utilization.gpu --format=csv,noheader,nounits` (lines "0, 37").
 * Null when nvidia-smi is missing or fails: unknown is not idle. "[N/A]" values are left out.
 */
export function sampleGpuUtilization(env: NodeJS.ProcessEnv = process.env): Promise<Map<number, number> | null> {
  return new Promise((resolve) => {
    execFile('nvidia-smi', ['--query-gpu=index,utilization.gpu', '--format=csv,noheader,nounits'], { encoding: 'utf8', timeout: 10_000, env }, (err, out) => {
      if (err) return resolve(null);
      const util = new Map<number, number>();
      for (const line of out.split('\n')) {
        const m = /^\s*(\d+)\s*,\s*(\d+(?:\.\d+)?)\s*$/.exec(line);
        if (m) util.set(Number(m[1]), Number(m[2]));
      }
      resolve(util.size > 0 ? util : null);
    });
  });
}
