/**
 * Agent lifecycle (issue 13 item 6), in process: a start that fails unwinds everything it set up,
 * and every close() step runs even when one throws. "Released" is proven the hard way: no fd of
 * this process points into the data dir any more, and a second agent can take the same data dir.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { Agent } from '../../src/runtime-agent/agent';

const logger = pino({ level: 'silent' });
const TOKEN = 'lifecycle-token-0123456789';
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function dataDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'mlinfra-lifecycle-'));
  dirs.push(d);
  return d;
}

/** Files of the data dir this process still holds open (journal, WAL, lock, logs). */
function openFilesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const target = fs.readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(dir)) out.push(target);
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

test('a start that fails on a port in use leaves no lock, no open journal, no open file', async () => {
  const dir = dataDir();
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  const port = (blocker.address() as net.AddressInfo).port;
  try {
    await expect(Agent.start({ dataDir: dir, token: TOKEN, port, maxCpuJobs: 1 }, logger)).rejects.toThrow(/EADDRINUSE/);
    expect(openFilesUnder(dir)).toEqual([]);
    // the lock is free and the journal was closed cleanly: a second start on the same dir works
    const b = await Agent.start({ dataDir: dir, token: TOKEN, port: 0, maxCpuJobs: 1 }, logger);
    await b.close();
    expect(openFilesUnder(dir)).toEqual([]);
  } finally {
    blocker.close();
  }
});

test('a close() step that throws: the others still run (journal closed, lock released), close() rejects with it', async () => {
  const dir = dataDir();
  const a = await Agent.start({ dataDir: dir, token: TOKEN, port: 0, maxCpuJobs: 1 }, logger);
  expect(openFilesUnder(dir).length).toBeGreaterThan(0);
  const app = (a as unknown as { app: { close(): Promise<void> } }).app;
  const realClose = app.close.bind(app);
  app.close = async () => {
    throw new Error('boom in app.close');
  };
  await expect(a.close()).rejects.toThrow('boom in app.close');
  expect(openFilesUnder(dir)).toEqual([]);
  await realClose();
  const b = await Agent.start({ dataDir: dir, token: TOKEN, port: 0, maxCpuJobs: 1 }, logger);
  await b.close();
});

test('an earlier close() step that throws (the scheduler) still closes the server, the journal and the lock', async () => {
  const dir = dataDir();
  const a = await Agent.start({ dataDir: dir, token: TOKEN, port: 0, maxCpuJobs: 1 }, logger);
  a.scheduler.shutdown = async () => {
    throw new Error('boom in shutdown');
  };
  await expect(a.close()).rejects.toThrow('boom in shutdown');
  expect(openFilesUnder(dir)).toEqual([]);
  // the port was closed too
  await expect(fetch(`${a.url}/healthz`)).rejects.toThrow();
});
