/**
 * A small fake Kubernetes API server on 127.0.0.1 (plain HTTP) for the gateway tests. It records
 * every call and implements just what the gateway uses: create / get / list (equality label
 * selectors) / delete of Jobs, JobSets and Pods, GET of LocalQueues, GET and PUT (with resourceVersion
 * conflicts) of ConfigMaps, strategic-merge PATCH of Deployments (rolled out at once), and pod logs
 * (with follow: the response stays open until the test ends it).
 * It does NOT model: controllers (tests set status and add pods themselves), admission webhooks
 * (Kueue, JobSet), schema validation (tests check JobSets against the JobSet CRD schema instead),
 * watches, field selectors, RBAC, or API discovery.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedCall {
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string>;
  readonly body?: any;
}

interface LogStream { text: string; open: http.ServerResponse[]; ended: boolean }

const ROUTE = /^\/(api\/v1|apis\/[^/]+\/[^/]+)\/namespaces\/([^/]+)\/([^/]+)(?:\/([^/]+))?(?:\/(log))?$/;

export class FakeApiServer {
  readonly calls: RecordedCall[] = [];
  /** key: `${group}/${plural}/${namespace}/${name}` */
  readonly objects = new Map<string, any>();
  /** When false, the JobSet API answers 404 like a cluster without the CRD. */
  jobSetInstalled = true;
  private readonly logs = new Map<string, LogStream>();
  private server?: http.Server;
  private clock = Date.parse('2026-01-01T00:00:00Z');
  url = '';

  constructor(private readonly token: string) {}

  async start(): Promise<string> {
    this.server = http.createServer((req, res) => { this.handle(req, res).catch((e) => this.send(res, 500, status(500, 'InternalError', String(e)))); });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    for (const l of this.logs.values()) for (const r of l.open) r.end();
    this.server?.closeAllConnections();
    await new Promise<void>((r) => this.server ? this.server.close(() => r()) : r());
  }

  // ---- test controls: what controllers would do
  put(group: string, plural: string, obj: any): void {
    this.objects.set(`${group}/${plural}/${obj.metadata.namespace}/${obj.metadata.name}`, obj);
  }
  get(group: string, plural: string, namespace: string, name: string): any {
    return this.objects.get(`${group}/${plural}/${namespace}/${name}`);
  }
  /** Appends to a pod's log; followers get it at once. */
  appendLog(namespace: string, pod: string, text: string): void {
    const l = this.logStream(namespace, pod);
    l.text += text;
    for (const r of l.open) r.write(text);
  }
  endLog(namespace: string, pod: string): void {
    const l = this.logStream(namespace, pod);
    l.ended = true;
    for (const r of l.open) r.end();
    l.open = [];
  }
  callsTo(method: string, re: RegExp): RecordedCall[] {
    return this.calls.filter((c) => c.method === method && re.test(c.path));
  }

  private logStream(namespace: string, pod: string): LogStream {
    const k = `${namespace}/${pod}`;
    let l = this.logs.get(k);
    if (!l) { l = { text: '', open: [], ended: false }; this.logs.set(k, l); }
    return l;
  }

  private send(res: http.ServerResponse, code: number, body: unknown): void {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', 'http://x');
    let raw = '';
    for await (const c of req) raw += c;
    const body = raw ? JSON.parse(raw) : undefined;
    this.calls.push({ method: req.method ?? '', path: u.pathname, query: Object.fromEntries(u.searchParams), ...(body !== undefined ? { body } : {}) });
    if (req.headers.authorization !== `Bearer ${this.token}`) return this.send(res, 401, status(401, 'Unauthorized', 'Unauthorized'));
    const m = ROUTE.exec(u.pathname);
    if (!m) return this.send(res, 404, status(404, 'NotFound', 'the server could not find the requested resource'));
    const [, group, ns, plural, name, log] = m;
    if (group.startsWith('apis/jobset.x-k8s.io') && !this.jobSetInstalled) {
      return this.send(res, 404, status(404, 'NotFound', 'the server could not find the requested resource'));
    }
    const key = (n: string) => `${group}/${plural}/${ns}/${n}`;

    if (log && req.method === 'GET') {
      if (!this.objects.has(key(name!))) return this.send(res, 404, status(404, 'NotFound', `pods "${name}" not found`));
      const l = this.logStream(ns, name!);
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write(l.text);
      if (u.searchParams.get('follow') === 'true' && !l.ended) { l.open.push(res); return; }
      res.end();
      return;
    }
    if (!name && req.method === 'POST') {
      const n = body?.metadata?.name;
      if (this.objects.has(key(n))) return this.send(res, 409, status(409, 'AlreadyExists', `${plural} "${n}" already exists`));
      const stored = { ...body, metadata: { ...body.metadata, namespace: ns, uid: `uid-${n}`, resourceVersion: '1', creationTimestamp: new Date(this.clock += 1000).toISOString() } };
      this.objects.set(key(n), stored);
      return this.send(res, 201, stored);
    }
    if (!name && req.method === 'GET') {
      const sel = (u.searchParams.get('labelSelector') ?? '').split(',').filter(Boolean).map((s) => s.split('='));
      const prefix = `${group}/${plural}/${ns}/`;
      const items = [...this.objects.entries()].filter(([k]) => k.startsWith(prefix)).map(([, v]) => v)
        .filter((o) => sel.every(([k, v]) => o.metadata?.labels?.[k] === v));
      return this.send(res, 200, { kind: 'List', items });
    }
    const obj = name ? this.objects.get(key(name)) : undefined;
    if (!obj) return this.send(res, 404, status(404, 'NotFound', `${plural} "${name}" not found`));
    if (req.method === 'GET') return this.send(res, 200, obj);
    if (req.method === 'PUT') {
      // Optimistic concurrency as the API server does it: a stale resourceVersion is a 409 Conflict.
      if (body?.metadata?.resourceVersion !== undefined && body.metadata.resourceVersion !== (obj.metadata.resourceVersion ?? '1')) {
        return this.send(res, 409, status(409, 'Conflict', `Operation cannot be fulfilled on ${plural} "${name}": the object has been modified`));
      }
      const stored = { ...body, metadata: { ...obj.metadata, ...body.metadata, resourceVersion: String(Number(obj.metadata.resourceVersion ?? '1') + 1) } };
      this.objects.set(key(name!), stored);
      return this.send(res, 200, stored);
    }
    if (req.method === 'PATCH' && plural === 'deployments') {
      // Strategic merge for what a rollout patches (replicas; containers and env by name), then the
      // Deployment controller's part at once: the new generation is rolled out and available.
      if (req.headers['content-type'] !== 'application/strategic-merge-patch+json') return this.send(res, 415, status(415, 'UnsupportedMediaType', String(req.headers['content-type'])));
      const spec = obj.spec;
      if (body?.spec?.replicas !== undefined) spec.replicas = body.spec.replicas;
      for (const pc of body?.spec?.template?.spec?.containers ?? []) {
        const c = spec.template.spec.containers.find((x: any) => x.name === pc.name);
        if (!c) return this.send(res, 422, status(422, 'Invalid', `no container ${pc.name}`));
        for (const pe of pc.env ?? []) {
          const e = (c.env ??= []).find((x: any) => x.name === pe.name);
          if (e) e.value = pe.value; else c.env.push(pe);
        }
      }
      obj.metadata.generation = (obj.metadata.generation ?? 1) + 1;
      const n = spec.replicas ?? 1;
      obj.status = { observedGeneration: obj.metadata.generation, replicas: n, updatedReplicas: n, availableReplicas: n };
      return this.send(res, 200, obj);
    }
    if (req.method === 'DELETE') {
      this.objects.delete(key(name!));
      // The garbage collector's part (foreground): the object's pods go with it.
      for (const [k, v] of [...this.objects.entries()]) {
        if (k.startsWith(`api/v1/pods/${ns}/`) && v.metadata?.labels?.['mlinfra.dev/job-id'] === name) this.objects.delete(k);
      }
      return this.send(res, 200, { ...obj, metadata: { ...obj.metadata, deletionTimestamp: new Date(this.clock).toISOString() } });
    }
    return this.send(res, 405, status(405, 'MethodNotAllowed', req.method ?? ''));
  }
}

function status(code: number, reason: string, message: string) {
  return { kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message };
}
