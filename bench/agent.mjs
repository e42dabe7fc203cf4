// Benchmark of mlinfra-agent (the built bundle, dist/agent/mlinfra-agent.js). Prints figures; asserts nothing.
//   node bench/agent.mjs            (after `npm run build:agent`): the agent's rows of `npm run bench` alone
// BENCH_AGENT_BUNDLE=<file> benches another build; BENCH_AGENT_NODE_FLAGS adds Node.js flags to the agent.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BUNDLE = process.env.BENCH_AGENT_BUNDLE ?? join(ROOT, 'dist', 'agent', 'mlinfra-agent.js');
const TOKEN = 'bench-token-0123456789';

const freePort = () => new Promise((res) => {
  const srv = createServer().listen(0, '127.0.0.1', () => {
    const { port } = srv.address();
    srv.close(() => res(port));
  });
});

/** Node.js flags for the agent process (e.g. BENCH_AGENT_NODE_FLAGS=--max-semi-space-size=1, as a host start line would pass). */
const NODE_FLAGS = (process.env.BENCH_AGENT_NODE_FLAGS ?? '').split(' ').filter(Boolean);
/** The 1-minute load average, printed beside each figure: on a shared machine the figures move with it. */
const load = () => `load ${loadavg()[0].toFixed(2)}`;
/** CPU time (user + system, ms) a process has used so far. */
function cpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * (1000 / 100); // clock ticks: USER_HZ is 100 on Linux
}

async function startAgent(args = [], node = process.execPath, nodeFlags = NODE_FLAGS) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'mlinfra-agent-bench-'));
  writeFileSync(join(dir, 'token'), TOKEN);
  const proc = spawn(node, [...nodeFlags, BUNDLE, 'serve', '--port', String(port), '--data-dir', join(dir, 'data'), '--token-file', join(dir, 'token'),
    '--log-level', 'warn', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  proc.stdout.resume();
  const url = `http://127.0.0.1:${port}`;
  const t0 = Date.now();
  for (;;) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {
      // not listening yet
    }
    if (proc.exitCode !== null || Date.now() - t0 > 20_000) {
      proc.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      throw new Error('the agent did not start');
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const close = async () => {
    proc.kill('SIGTERM');
    await new Promise((r) => proc.on('exit', r));
    rmSync(dir, { recursive: true, force: true });
  };
  return { url, proc, dir, close };
}

/**
 * The floor runner (bench/floor-runner.mjs): what any durable, supervised HTTP job runner costs on
 * this machine before its own code, printed beside each goal.
 */
async function startFloor(slots = 2) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'mlinfra-floor-bench-'));
  const proc = spawn(process.execPath, [join(ROOT, 'bench', 'floor-runner.mjs'), String(port), dir, String(slots)], { stdio: ['ignore', 'ignore', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  for (const t0 = Date.now(); ; await new Promise((r) => setTimeout(r, 20))) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {
      if (Date.now() - t0 > 20_000) throw new Error('the floor runner did not start');
    }
  }
  return {
    url, proc, async close() {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.on('exit', r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A Node.js process that only listens with node:http and holds a SQLite journal open in WAL mode with
 * the driver the agent uses here: the least an agent with a SQLite journal can take in memory.
 */
async function startFloorIdle(nodeFlags) {
  const dir = mkdtempSync(join(tmpdir(), 'mlinfra-floor-rss-'));
  const [major, minor] = process.versions.node.split('.').map(Number);
  const sqlite = major > 22 || (major === 22 && minor >= 13)
    ? `const { DatabaseSync } = require('node:sqlite'); new DatabaseSync(${JSON.stringify(join(dir, 'j'))}).exec('PRAGMA journal_mode=WAL');`
    : `const D = require('better-sqlite3'); new D(${JSON.stringify(join(dir, 'j'))}).pragma('journal_mode = WAL');`;
  const proc = spawn(process.execPath, [...nodeFlags, '-e', `${sqlite} require('node:http').createServer().listen(0, '127.0.0.1', () => process.stdout.write('up\\n'));`],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, NODE_PATH: join(ROOT, 'node_modules') } });
  await new Promise((r) => proc.stdout.once('data', r));
  return {
    proc, async close() {
      proc.kill('SIGKILL');
      await new Promise((r) => proc.on('exit', r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Resident memory of a process now, in MiB: all, anonymous (heap), file-backed (the node binary's pages). */
function rssOf(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const mib = (k) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) / 1024;
  return `${mib('VmRSS').toFixed(1)} MiB (anonymous ${mib('RssAnon').toFixed(1)}, file ${mib('RssFile').toFixed(1)})`;
}

const auth = { authorization: `Bearer ${TOKEN}` };
async function submit(url, spec) {
  const res = await fetch(`${url}/v1/jobs`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(spec) });
  if (res.status !== 201) throw new Error(`submit: ${res.status} ${await res.text()}`);
  return (await res.json()).id;
}
/** Resolves when the job is terminal (the follow stream ends then); returns the bytes streamed. */
async function follow(url, id) {
  const res = await fetch(`${url}/v1/jobs/${id}/logs?follow=1`, { headers: auth });
  if (res.status !== 200) throw new Error(`follow: ${res.status} ${await res.text()}`);
  let bytes = 0;
  for await (const chunk of res.body) bytes += chunk.length;
  return bytes;
}
function spawnDirect(cmd) {
  return new Promise((r) => spawn(cmd, [], { stdio: 'ignore' }).on('exit', r));
}
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const ms = (x) => `${x.toFixed(2)} ms`;

/** Runs `n` tasks with at most `width` at once; resolves when all are done. */
async function pool(n, width, task) {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) {
      next++;
      await task();
    }
  }));
}

export async function benchAgent({ jobs = 200, submits = 2000, concurrency = 16, logMiB = 50, throughputJobs = 1000 } = {}) {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run npm run build:agent`);
  const lines = [];
  const print = (s) => { lines.push(s); process.stdout.write(`${s}\n`); };
  print(`mlinfra-agent bench: bundle ${(statSync(BUNDLE).size / 1024).toFixed(1)} KiB, node ${process.version}`);

  // 1. RSS of a fresh agent 1.5 s after start, and idle 30 s later (V8's memory reducer shrinks the heap
  // of an idle process after ~10-20 s: what a host pays while no job comes); beside it the same on
  // another Node.js (e.g. 22 LTS with node:sqlite: BENCH_NODE=/path/to/node), with
  // --max-semi-space-size=1 (a 1 MiB young generation), and the floor. All idle side by side.
  {
    const variants = [[process.execPath, NODE_FLAGS], [process.execPath, [...NODE_FLAGS, '--max-semi-space-size=1']]];
    if (process.env.BENCH_NODE) variants.push([process.env.BENCH_NODE, NODE_FLAGS]);
    const running = [];
    for (const [node, flags] of variants) {
      const version = node === process.execPath ? process.version : 'BENCH_NODE';
      running.push({ name: `agent (${version}${flags.length ? ` ${flags.join(' ')}` : ''})`, h: await startAgent([], node, flags) });
    }
    running.push({ name: 'floor (node:http listening + a SQLite journal open, no agent code)', h: await startFloorIdle(NODE_FLAGS) });
    await new Promise((r) => setTimeout(r, 1500));
    const early = running.map((x) => rssOf(x.h.proc.pid));
    await new Promise((r) => setTimeout(r, 30_000));
    running.forEach((x, i) => print(`RSS of ${x.name}: 1.5 s after start ${early[i]}; idle 30 s later ${rssOf(x.h.proc.pid)}${i === 0 ? ` (goal <= 50 MiB; ${load()})` : ''}`));
    for (const x of running) await x.h.close();
  }

  // 2. per-job overhead: /bin/true through the agent (submit -> terminal) vs spawned directly
  {
    const a = await startAgent();
    for (let i = 0; i < 10; i++) await follow(a.url, await submit(a.url, { argv: ['/bin/true'] }));
    const direct = [];
    for (let i = 0; i < jobs; i++) {
      const t = performance.now();
      await spawnDirect('/bin/true');
      direct.push(performance.now() - t);
    }
    const viaAgent = [];
    for (let i = 0; i < jobs; i++) {
      const t = performance.now();
      await follow(a.url, await submit(a.url, { argv: ['/bin/true'] }));
      viaAgent.push(performance.now() - t);
    }
    print(`/bin/true x${jobs}, spawned directly: p50 ${ms(pct(direct, 50))}, p99 ${ms(pct(direct, 99))}`);
    print(`/bin/true x${jobs}, via agent (submit -> terminal, sequential): p50 ${ms(pct(viaAgent, 50))}, p99 ${ms(pct(viaAgent, 99))}`);
    print(`per-job overhead: p50 ${ms(pct(viaAgent, 50) - pct(direct, 50))}, p99 ${ms(pct(viaAgent, 99) - pct(direct, 99))}; agent p50 = ${(pct(viaAgent, 50) / pct(direct, 50)).toFixed(2)}x of direct (goal <= 2x; ${load()})`);
    await a.close();
    const f = await startFloor();
    for (let i = 0; i < 10; i++) await follow(f.url, await submit(f.url, { argv: ['/bin/true'] }));
    const viaFloor = [];
    for (let i = 0; i < jobs; i++) {
      const t = performance.now();
      await follow(f.url, await submit(f.url, { argv: ['/bin/true'] }));
      viaFloor.push(performance.now() - t);
    }
    print(`  floor (bench/floor-runner.mjs: two requests, two fdatasyncs, a /bin/sh supervisor): p50 ${ms(pct(viaFloor, 50))} = ${(pct(viaFloor, 50) / pct(direct, 50)).toFixed(2)}x of direct, p99 ${ms(pct(viaFloor, 99))}`);
    await f.close();
  }

  // 2b. throughput: 1,000 trivial jobs at 2 slots, 16 submitters (each waits for its job's end) vs 2 direct spawners
  {
    const t0 = performance.now();
    await pool(throughputJobs, 2, () => spawnDirect('/bin/true'));
    const direct = (performance.now() - t0) / 1000;
    const a = await startAgent(['--max-cpu-jobs', '2']);
    const t1 = performance.now();
    const cpu0 = cpuMs(a.proc.pid);
    await pool(throughputJobs, concurrency, async () => follow(a.url, await submit(a.url, { argv: ['/bin/true'] })));
    const agent = (performance.now() - t1) / 1000;
    const cpuPerJob = (cpuMs(a.proc.pid) - cpu0) / throughputJobs;
    print(`${throughputJobs} jobs at 2 slots: direct ${direct.toFixed(2)} s (${(throughputJobs / direct).toFixed(0)}/s), agent ${agent.toFixed(2)} s (${(throughputJobs / agent).toFixed(0)}/s) = ${(direct / agent).toFixed(2)}x of direct (goal >= 0.8x); agent CPU ${cpuPerJob.toFixed(2)} ms/job (${load()})`);
    await a.close();
    const f = await startFloor(2);
    const t2 = performance.now();
    const fcpu0 = cpuMs(f.proc.pid);
    await pool(throughputJobs, concurrency, async () => follow(f.url, await submit(f.url, { argv: ['/bin/true'] })));
    const floor = (performance.now() - t2) / 1000;
    const floorCpu = (cpuMs(f.proc.pid) - fcpu0) / throughputJobs;
    print(`  floor (bench/floor-runner.mjs, same load): ${floor.toFixed(2)} s (${(throughputJobs / floor).toFixed(0)}/s) = ${(direct / floor).toFixed(2)}x of direct; its CPU ${floorCpu.toFixed(2)} ms/job (${load()})`);
    await f.close();
  }

  // 3. durable submits per second (scheduler paused: every submit is an fsynced journal insert)
  {
    const a = await startAgent(['--paused']);
    let next = 0;
    const t = performance.now();
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next++ < submits) await submit(a.url, { argv: ['/bin/true'] });
    }));
    const secs = (performance.now() - t) / 1000;
    print(`durable submits: ${submits} in ${secs.toFixed(2)} s at concurrency ${concurrency} = ${(submits / secs).toFixed(0)} /s (${load()})`);
    await a.close();
  }

  // 4. log-follow throughput: a job writes logMiB MiB to stdout, followed live with ?follow=1
  {
    const a = await startAgent(['--log-max-bytes', String(256 * 1024 * 1024)]);
    const t = performance.now();
    const id = await submit(a.url, { argv: ['sh', '-c', `head -c ${logMiB * 1024 * 1024} /dev/zero | tr '\\0' 'x'`] });
    const bytes = await follow(a.url, id);
    const secs = (performance.now() - t) / 1000;
    print(`log follow: ${(bytes / 1048576).toFixed(1)} MiB in ${secs.toFixed(2)} s = ${(bytes / 1048576 / secs).toFixed(1)} MiB/s`);
    await a.close();
  }
  return lines;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  benchAgent().catch((e) => {
    process.stderr.write(`${e.stack ?? e}\n`);
    process.exit(1);
  });
}
