// Shared by the benches: a fresh node process per sample, wall time and peak RSS.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Runs `code` in a fresh node; returns wall ms and peak RSS (MiB) of that process. */
export function measure(code, env = {}) {
  const probe = `${code};process.on('exit',()=>process.stderr.write('\\nBENCH '+JSON.stringify({rss:process.resourceUsage().maxRSS})+'\\n'))`;
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, ['-e', probe], { cwd: root, env: { ...process.env, CHECKPOINT_DISABLE: '1', ...env }, encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`bench child failed: ${r.stderr}`);
  const line = r.stderr.split('\n').find((l) => l.startsWith('BENCH '));
  return { ms, rssMiB: JSON.parse(line.slice(6)).rss / 1024 };
}

/** Median and min wall time, peak RSS over samples. */
export function summarize(name, samples) {
  const ms = samples.map((s) => s.ms).sort((a, b) => a - b);
  const rss = samples.map((s) => s.rssMiB).sort((a, b) => a - b);
  return { name, runs: samples.length, medianMs: +ms[Math.floor(ms.length / 2)].toFixed(0), minMs: +ms[0].toFixed(0), peakRssMiB: +rss[rss.length - 1].toFixed(0) };
}
