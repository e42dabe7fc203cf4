// The least a durable, supervised HTTP job runner does per job, without any of mlinfra-agent's code:
// the floor its bench goals are measured against (bench/agent.mjs starts it). It keeps the three
// costs the agent's design requires and drops everything else:
//   - node:http, the same two requests per job as the agent's clients (POST /v1/jobs, then
//     GET /v1/jobs/:id/logs?follow=1, which ends with the job);
//   - one append + fdatasync before the 201 and one at the end (a durable journal, no SQLite, no
//     group commit);
//   - a /bin/sh supervisor per job in its own session (the job a child of it, its status written
//     to a file), started with spawn(detached).
// No auth, validation, log files, FIFOs, scheduler, metrics or recovery.
//   node bench/floor-runner.mjs <port> <dir> [slots=2]
import { spawn } from 'node:child_process';
import { closeSync, fdatasync, openSync, writeSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';

const [port, dir, slots = '2'] = process.argv.slice(2);
const journal = openSync(join(dir, 'journal'), 'a');
const durable = (line) => new Promise((res, rej) => {
  writeSync(journal, `${line}\n`);
  fdatasync(journal, (e) => (e ? rej(e) : res()));
});
const jobs = new Map();
const queue = [];
let running = 0;
let next = 0;

function pump() {
  while (running < Number(slots) && queue.length > 0) {
    const job = queue.shift();
    running++;
    const status = join(dir, `${job.id}.s`);
    const shim = spawn('/bin/sh', ['-c', '("$@"); echo $? >"$0"', status, ...job.argv], { detached: true, stdio: 'ignore' });
    shim.on('exit', async () => {
      running--;
      pump();
      await durable(`end ${job.id}`);
      job.done = true;
      for (const res of job.followers) res.end();
    });
  }
}

createServer((req, res) => {
  if (req.method === 'POST') {
    const chunks = [];
    req.on('data', (c) => chunks.push(c)).on('end', async () => {
      const spec = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      const job = { id: `j-${next++}`, argv: spec.argv, followers: [], done: false };
      await durable(`submit ${job.id} ${JSON.stringify(spec)}`);
      jobs.set(job.id, job);
      queue.push(job);
      pump();
      res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ id: job.id }));
    });
    return;
  }
  if (req.url === '/healthz') {
    res.end('{"ok":true}');
    return;
  }
  const job = jobs.get(req.url.split('/')[3]);
  res.writeHead(200, { 'content-type': 'application/octet-stream' });
  if (job.done) res.end();
  else job.followers.push(res);
}).listen(Number(port), '127.0.0.1');
process.on('SIGTERM', () => {
  closeSync(journal);
  process.exit(0);
});
