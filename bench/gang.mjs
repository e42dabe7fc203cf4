// Benchmark of multi-node (gang) jobs on the cluster queue (the built agent, dist/agent): prints figures, asserts nothing.
//   node bench/gang.mjs      (after `npm run build:agent`)
// Three agents on loopback share the SQS fake and a file:// bucket. For N = 1 (a plain cluster job), 2 and 3:
// the time from the submit's 201 to the last rank's program running (each rank appends its start time).
// The program is `sh`, not torch, so the figure is the gang's own cost (queue, bucket registration, barrier)
// and not torch's import. BENCH_GANG_ROUNDS (default 3) rounds each.
import { mkdirSync, mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
require(join(ROOT, 'test', 'support', 'ts-register.js'));
const helpers = require(join(ROOT, 'test', 'runtime-agent', 'helpers.ts'));
const { startSqsServer } = require(join(ROOT, 'test', 'runtime-agent', 'queue-helpers.ts'));

const ROUNDS = Number(process.env.BENCH_GANG_ROUNDS ?? 3);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** ms from the 201 to the last of `nodes` program starts (a start file per round). */
async function once(agent, nodes, shared, round) {
  const file = join(shared, `starts-${nodes}-${round}`);
  const argv = ['sh', '-c', `date +%s%N >> ${file}`];
  const t0 = Date.now();
  const r = nodes === 1
    ? await agent.api('POST', '/v1/cluster/jobs', { argv })
    : await agent.api('POST', '/v1/cluster/gangs', { argv, nodes, gangTimeoutSeconds: 120 });
  if (r.status !== 201) throw new Error(`submit answered ${r.status}: ${r.text}`);
  const lines = await helpers.waitFor(`${nodes} starts`, () => {
    if (!existsSync(file)) return undefined;
    const l = readFileSync(file, 'utf8').trim().split('\n');
    return l.length >= nodes ? l : undefined;
  }, 120_000, 10);
  const last = Math.max(...lines.map((x) => Number(BigInt(x) / 1_000_000n)));
  // let the job end before the next round, so every round starts on idle hosts
  const path = nodes === 1 ? `/v1/cluster/jobs/${r.json.id}` : `/v1/cluster/gangs/${r.json.id}`;
  await helpers.waitFor('the end', async () => (await agent.api('GET', path)).json?.state === 'succeeded', 60_000, 50);
  return last - t0;
}

export async function benchGang() {
  helpers.requireBundle();
  const sqs = await startSqsServer();
  const bucket = mkdtempSync(join(tmpdir(), 'mlinfra-bench-gang-'));
  const shared = join(bucket, 'shared');
  mkdirSync(shared);
  const rows = [];
  try {
    const q = await sqs.create(`bench-gang-${Date.now()}`, { leaseSeconds: 3 });
    const args = ['--queue', q.url, '--dead-letter-queue', q.deadLetterUrl, '--cluster-artifacts', `file://${bucket}/cluster`, '--lease-seconds', '3',
      '--queue-poll-seconds', '0.2', '--log-ship-seconds', '1', '--checkpoint-seconds', '5', '--log-level', 'info'];
    const agents = [];
    for (let i = 0; i < 3; i++) agents.push(await helpers.startAgent({ args, env: { ...q.env, MLINFRA_GANG_ADDRESS: '127.0.0.1' } }));
    const by = {};
    for (const nodes of [1, 2, 3]) {
      const ms = [];
      for (let r = 0; r < ROUNDS; r++) ms.push(await once(agents[r % 3], nodes, shared, r));
      by[nodes] = median(ms);
      rows.push({ measure: nodes === 1 ? 'submit -> running, one-node cluster job' : `submit -> all ${nodes} ranks running, gang`, rounds: ROUNDS, 'median ms': Math.round(by[nodes]) });
    }
    for (const nodes of [2, 3]) rows.push({ measure: `gang overhead over a one-node job, N = ${nodes}`, rounds: ROUNDS, 'median ms': Math.round(by[nodes] - by[1]) });
  } finally {
    await helpers.stopAllAgents();
    await sqs.close();
    rmSync(bucket, { recursive: true, force: true });
  }
  process.stdout.write('\ngang jobs (3 agents on loopback, SQS fake, file:// bucket; the rank program is sh)\n');
  console.table(rows);
  return rows;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await benchGang();
