/**
 * A small fake of the Cloud Run Admin API v2 on loopback, for what a rollout calls: GET a service,
 * PATCH it (a long-running operation), GET the operation. It records every call. A PATCH's operation is
 * done after `opPolls` GETs; then the new template's revision becomes the latest ready one and the
 * traffic split applies — unless `failNextRevision` is set, when the operation ends with an error and
 * the service keeps its revision and traffic (as when a revision fails its startup probe). Not
 * modelled: IAM, revision listing, tags, scaling, any field it is not given.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeCloudRun {
  readonly url: string;
  readonly calls: { readonly method: string; readonly path: string; readonly auth: string; readonly body?: any }[];  
  opPolls: number;
  failNextRevision?: string;
  service(): any;  
  close(): Promise<void>;
}

export async function startFakeCloudRun(name: string, initialRevision: string): Promise<FakeCloudRun> {
  let svc: any = {  
    name, uri: 'https://ltv-api-xyz.a.run.app',
    template: { revision: initialRevision, containers: [{ image: 'us-docker.pkg.dev/p/ghcr/acme/ltv:2.0', env: [{ name: 'PORT_NAME', value: 'http1' }] }] },
    traffic: [{ type: 'TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST', percent: 100 }],
    latestReadyRevision: initialRevision, conditions: [{ type: 'RoutesReady', state: 'CONDITION_SUCCEEDED' }],
  };
  const ops = new Map<string, { polls: number; apply: () => string | undefined }>();
  let n = 0;
  const fake: FakeCloudRun = {
    url: '', calls: [], opPolls: 1, service: () => JSON.parse(JSON.stringify(svc)),
    close: () => new Promise((r) => srv.close(() => r())),
  };
  const send = (res: http.ServerResponse, status: number, v: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(v));
  const srv = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => { raw += c.toString(); });
    req.on('end', () => {
      const path = (req.url ?? '').replace(/^\/v2\//, '');
      const body = raw ? JSON.parse(raw) : undefined;
      fake.calls.push({ method: req.method ?? '', path, auth: String(req.headers.authorization ?? ''), ...(body ? { body } : {}) });
      if (path === name && req.method === 'GET') return send(res, 200, svc);
      if (path === name && req.method === 'PATCH') {
        const opName = `${name.replace(/\/services\/.*/, '')}/operations/op-${++n}`;
        const fail = fake.failNextRevision && body.template?.revision === fake.failNextRevision;
        if (fail) fake.failNextRevision = undefined;
        ops.set(opName, {
          polls: 0,
          apply: () => {
            if (fail) return `Revision '${body.template.revision}' is not ready and cannot serve traffic. The user-provided container failed to start and listen on the port defined provided by the PORT=8080 environment variable.`;
            svc = { ...body, latestReadyRevision: body.template.revision, conditions: svc.conditions, uri: svc.uri };
            return undefined;
          },
        });
        return send(res, 200, { name: opName, done: false });
      }
      const op = ops.get(path);
      if (op && req.method === 'GET') {
        if (++op.polls < fake.opPolls) return send(res, 200, { name: path, done: false });
        const err = op.apply();
        ops.delete(path);
        return send(res, 200, { name: path, done: true, ...(err ? { error: { code: 9, message: err } } : { response: svc }) });
      }
      return send(res, 404, { error: { code: 404, message: `fake Cloud Run: no route ${req.method} ${path}` } });
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  (fake as { url: string }).url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  return fake;
}
