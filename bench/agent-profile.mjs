// CPU profile of mlinfra-agent over trivial jobs: where the agent's time goes (HTTP, journal, spawn, logs).
//   node bench/agent-profile.mjs [jobs=1000] [submitters=16]
// Builds an unminified bundle into a temporary dir (readable function names), runs it with --cpu-prof at
// 2 slots, drives `jobs` /bin/true jobs (submit, then follow to the end), and prints the functions with
// the most self and inclusive time (sampled wall time of the main thread: a blocking fsync or fork counts).
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const [jobs = 1000, submitters = 16] = process.argv.slice(2).map(Number);
const TOKEN = 'bench-token-0123456789';
const dir = mkdtempSync(join(tmpdir(), 'mlinfra-agent-profile-'));
execFileSync(process.execPath, [join(ROOT, 'scripts', 'build-agent.mjs'), '--outdir', join(dir, 'agent'), '--no-minify'], { stdio: 'ignore' });
writeFileSync(join(dir, 'token'), TOKEN);
const port = await new Promise((res) => {
  const srv = createServer().listen(0, '127.0.0.1', () => {
    const { port } = srv.address();
    srv.close(() => res(port));
  });
});
const proc = spawn(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${join(dir, 'prof')}`, join(dir, 'agent', 'mlinfra-agent.js'), 'serve',
  '--port', String(port), '--data-dir', join(dir, 'data'), '--token-file', join(dir, 'token'), '--log-level', 'warn', '--max-cpu-jobs', '2'],
{ stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, NODE_PATH: join(ROOT, 'node_modules') } });
const url = `http://127.0.0.1:${port}`;
const auth = { authorization: `Bearer ${TOKEN}` };
for (let i = 0; ; i++) {
  try {
    if ((await fetch(`${url}/healthz`)).ok) break;
  } catch {
    if (i > 1000) throw new Error('the agent did not start');
  }
  await new Promise((r) => setTimeout(r, 20));
}
let next = 0;
const t0 = performance.now();
await Promise.all(Array.from({ length: submitters }, async () => {
  while (next++ < jobs) {
    const res = await fetch(`${url}/v1/jobs`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{"argv":["/bin/true"]}' });
    const { id } = await res.json();
    for await (const chunk of (await fetch(`${url}/v1/jobs/${id}/logs?follow=1`, { headers: auth })).body) void chunk;
  }
}));
process.stdout.write(`${jobs} jobs in ${((performance.now() - t0) / 1000).toFixed(2)} s (load ${loadavg()[0].toFixed(2)})\n`);
proc.kill('SIGTERM');
await new Promise((r) => proc.on('exit', r));

const file = readdirSync(join(dir, 'prof')).find((f) => f.endsWith('.cpuprofile'));
const p = JSON.parse(readFileSync(join(dir, 'prof', file), 'utf8'));
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const selfTime = new Map();
p.samples.forEach((id, i) => selfTime.set(id, (selfTime.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
const total = [...selfTime.values()].reduce((a, b) => a + b, 0);
const name = (n) => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').pop()}:${n.callFrame.lineNumber + 1}`;
const self = {};
const incl = {};
for (const [id, t] of selfTime) {
  self[name(byId.get(id))] = (self[name(byId.get(id))] ?? 0) + t;
  const seen = new Set();
  for (let c = id; c !== undefined; c = parent.get(c)) {
    const k = name(byId.get(c));
    if (!seen.has(k)) incl[k] = (incl[k] ?? 0) + t;
    seen.add(k);
  }
}
const top = (m, n) => Object.entries(m).sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) => `${(v / total * 100).toFixed(1).padStart(6)}%  ${k}`).join('\n');
process.stdout.write(`\nself time (of ${(total / 1e6).toFixed(1)} s sampled)\n${top(self, 25)}\n\ninclusive time\n${top(incl, 40)}\n`);

// self time by where the code comes from: the unminified bundle marks each module with a `// path` line
const bundleLines = readFileSync(join(dir, 'agent', 'mlinfra-agent.js'), 'utf8').split('\n');
const marks = [];
bundleLines.forEach((l, i) => {
  const m = /^\/\/ (node_modules\/((?:@[^/]+\/)?[^/]+)|src\/runtime-agent\/(.+))/.exec(l);
  if (m) marks.push([i, m[2] ?? `agent: ${m[3]}`]);
});
const moduleOf = (n) => {
  const { url, lineNumber } = n.callFrame;
  if (!url.endsWith('mlinfra-agent.js')) return url.startsWith('node:') || !url ? `node${url ? '' : ' (native, gc, idle)'}` : url;
  let lo = 0;
  for (let hi = marks.length - 1; lo < hi;) {
    const mid = (lo + hi + 1) >> 1;
    if (marks[mid][0] <= lineNumber) lo = mid;
    else hi = mid - 1;
  }
  return marks[lo]?.[1] ?? 'bundle';
};
const byModule = {};
for (const [id, t] of selfTime) {
  const n = byId.get(id);
  const k = n.callFrame.functionName === '(idle)' ? '(idle)' : moduleOf(n);
  byModule[k] = (byModule[k] ?? 0) + t;
}
process.stdout.write(`\nself time by module\n${top(byModule, 25)}\n`);

// PROFILE_CALLERS=mkdir,open: where the time of these functions comes from (their 4 nearest callers)
for (const fn of (process.env.PROFILE_CALLERS ?? '').split(',').filter(Boolean)) {
  const stacks = {};
  for (const [id, t] of selfTime) {
    if (byId.get(id).callFrame.functionName !== fn) continue;
    const chain = [];
    for (let c = parent.get(id); c !== undefined && chain.length < 4; c = parent.get(c)) chain.push(name(byId.get(c)));
    stacks[chain.join(' < ')] = (stacks[chain.join(' < ')] ?? 0) + t;
  }
  process.stdout.write(`\ncallers of ${fn}\n${top(stacks, 6)}\n`);
}
rmSync(dir, { recursive: true, force: true });
