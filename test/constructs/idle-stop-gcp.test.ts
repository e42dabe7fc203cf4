/**
 * The GCP idle-stop script, run for real (bash, Node's fetch) against a small fake of the metadata
 * server, the Compute API (regional MIG get / deleteInstances) and the GCS JSON API (media upload with
 * ifGenerationMatch, get, delete) on 127.0.0.1.
 */
import { spawn } from 'child_process';
import { createServer, IncomingMessage, Server, ServerResponse } from 'http';
import { AddressInfo } from 'net';
import { gcpIdleStopScript } from '../../src/constructs/gpu-cluster/gcp-idle-stop';

interface Fake {
  url: string;
  server: Server;
  targetSize: number;
  deleted: string[];
  objects: Map<string, { generation: string; timeCreated: string; body: string }>;
}

function body(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let s = '';
    req.on('data', (c) => (s += c));
    req.on('end', () => resolve(s));
  });
}

/** The fake: deleteInstances lowers the target size after `lagMs`, as the real group does asynchronously. */
async function startFake(targetSize: number, lagMs = 50): Promise<Fake> {
  let gen = 1000;
  const fake: Fake = { url: '', server: undefined as unknown as Server, targetSize, deleted: [], objects: new Map() };
  const json = (res: ServerResponse, status: number, v: unknown) => { res.writeHead(status, { 'content-type': 'application/json' }); res.end(JSON.stringify(v)); };
  fake.server = createServer(async (req, res) => {
    const u = new URL(req.url!, 'http://x');
    const data = await body(req);
    if (u.pathname.startsWith('/md/')) {
      if (req.headers['metadata-flavor'] !== 'Google') return json(res, 403, {});
      const name = u.pathname.split('/')[2];
      if (u.pathname.endsWith('/token')) return json(res, 200, { access_token: 'tok', expires_in: 3600 });
      if (u.pathname.endsWith('/instance/name')) { res.end(name); return; }
      if (u.pathname.endsWith('/instance/zone')) { res.end('projects/123/zones/us-central1-a'); return; }
    }
    if (req.headers.authorization !== 'Bearer tok') return json(res, 401, {});
    const mig = /^\/compute\/v1\/projects\/p-123456\/regions\/us-central1\/instanceGroupManagers\/grp(\/deleteInstances)?$/.exec(u.pathname);
    if (mig && req.method === 'GET' && !mig[1]) return json(res, 200, { name: 'grp', targetSize: fake.targetSize });
    if (mig && req.method === 'POST' && mig[1]) {
      const instances = JSON.parse(data).instances as string[];
      fake.deleted.push(...instances);
      setTimeout(() => { fake.targetSize -= instances.length; }, lagMs);
      return json(res, 200, { kind: 'compute#operation', status: 'RUNNING' });
    }
    const upload = /^\/upload\/storage\/v1\/b\/([^/]+)\/o$/.exec(u.pathname);
    if (upload && req.method === 'POST') {
      const name = u.searchParams.get('name')!;
      if (u.searchParams.get('ifGenerationMatch') === '0' && fake.objects.has(name)) return json(res, 412, { error: 'conditionNotMet' });
      const o = { generation: String(++gen), timeCreated: new Date().toISOString(), body: data };
      fake.objects.set(name, o);
      return json(res, 200, { name, generation: o.generation, timeCreated: o.timeCreated });
    }
    const obj = /^\/storage\/v1\/b\/([^/]+)\/o\/(.+)$/.exec(u.pathname);
    if (obj) {
      const name = decodeURIComponent(obj[2]);
      const o = fake.objects.get(name);
      if (!o) return json(res, 404, {});
      if (req.method === 'GET') return json(res, 200, { name, generation: o.generation, timeCreated: o.timeCreated });
      if (req.method === 'DELETE') {
        const match = u.searchParams.get('ifGenerationMatch');
        if (match && match !== o.generation) return json(res, 412, {});
        fake.objects.delete(name);
        res.writeHead(204); res.end(); return;
      }
    }
    json(res, 404, { path: u.pathname });
  });
  await new Promise<void>((r) => fake.server.listen(0, '127.0.0.1', r));
  fake.url = `http://127.0.0.1:${(fake.server.address() as AddressInfo).port}`;
  return fake;
}

const script = (min: number) => `#!/bin/bash\nset -euo pipefail\n${gcpIdleStopScript({
  project: 'p-123456', region: 'us-central1', group: 'grp', minNodes: min, bucket: 'bkt-artifacts', nodePath: '/opt/mlinfra/node/bin/node',
})}\n`;

/** Runs stop.sh as the host would (bash), with the fake's URLs; the metadata path names the host. */
function runStop(fake: Fake, min: number, host: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', script(min)], {
      env: {
        PATH: process.env.PATH!, MLINFRA_STOP_POLL_MS: '20',
        MLINFRA_GCE_METADATA: `${fake.url}/md/${host}`, MLINFRA_COMPUTE_API: `${fake.url}/compute/v1`, MLINFRA_STORAGE_API: fake.url,
      },
    });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (out += c));
    child.on('exit', (code) => resolve({ code, out }));
  });
}

describe('GCP idle stop against a fake Compute/GCS/metadata API on loopback', () => {
  let fake: Fake;
  afterEach(() => new Promise<void>((r) => fake.server.close(() => r())));

  test('a host above the minimum deletes itself through the group and exits 0; the lock is released', async () => {
    fake = await startFake(3);
    const r = await runStop(fake, 1, 'host-a');
    expect(r).toEqual(expect.objectContaining({ code: 0 }));
    expect(fake.deleted).toEqual(['zones/us-central1-a/instances/host-a']);
    expect(fake.targetSize).toBe(2);
    expect(fake.objects.size).toBe(0);
  });

  test('at the minimum the host stays and exits non-zero, so the agent tries again later', async () => {
    fake = await startFake(1);
    const r = await runStop(fake, 1, 'host-a');
    expect(r.code).not.toBe(0);
    expect(r.out).toContain('at its minimum');
    expect(fake.deleted).toEqual([]);
    expect(fake.objects.size).toBe(0);
  });

  test('exact floor: four idle hosts of a group of 3 with min 1 at once: exactly two leave', async () => {
    fake = await startFake(3, 150);
    const results = await Promise.all(['h1', 'h2', 'h3', 'h4'].map((h) => runStop(fake, 1, h)));
    expect(fake.deleted).toHaveLength(2);
    expect(fake.targetSize).toBe(1);
    expect(results.filter((r) => r.code === 0)).toHaveLength(2);
    expect(fake.objects.size).toBe(0);
  }, 30_000);

  test('a stale lock left by a dead host is taken over', async () => {
    fake = await startFake(2);
    fake.objects.set('mlinfra/idle-stop.lock', { generation: '7', timeCreated: new Date(Date.now() - 3600_000).toISOString(), body: 'dead' });
    const r = await runStop(fake, 1, 'host-b');
    expect(r.code).toBe(0);
    expect(fake.deleted).toEqual(['zones/us-central1-a/instances/host-b']);
  });
});
