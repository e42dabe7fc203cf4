/**
 * The few Kubernetes API calls the gateway and a promoting pod make, over node:http(s) with the pod's
 * service account: create, get, list (label selector), replace, patch, delete, and pod logs (streamed with follow).
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { Readable } from 'node:stream';
import type { KubeObject } from './objects';

export interface KubeClientOptions {
  /** e.g. https://10.0.0.1:443 (in a pod: from KUBERNETES_SERVICE_HOST/PORT). */
  readonly server: string;
  readonly token: () => string;
  readonly ca?: Buffer;
  readonly timeoutMs?: number;
}

/** An answer from the API server that was not 2xx. `status` is the HTTP code, `reason` the Status reason. */
export class KubeApiError extends Error {
  constructor(public readonly status: number, public readonly reason: string, message: string, public readonly path: string) {
    super(message);
  }
}

export interface Resource {
  /** API path prefix: /api/v1, /apis/batch/v1, /apis/jobset.x-k8s.io/v1alpha2 ... */
  readonly api: string;
  /** Plural: jobs, jobsets, pods, localqueues. */
  readonly plural: string;
}
export const JOBS: Resource = { api: '/apis/batch/v1', plural: 'jobs' };
export const JOBSETS: Resource = { api: '/apis/jobset.x-k8s.io/v1alpha2', plural: 'jobsets' };
export const PODS: Resource = { api: '/api/v1', plural: 'pods' };
export const LOCALQUEUES: Resource = { api: '/apis/kueue.x-k8s.io/v1beta2', plural: 'localqueues' };
export const CONFIGMAPS: Resource = { api: '/api/v1', plural: 'configmaps' };
export const DEPLOYMENTS: Resource = { api: '/apis/apps/v1', plural: 'deployments' };

/** Where the kubelet mounts a pod's service account token, CA and namespace. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** A client from the pod's environment and service account files (`dir`: tests point it at their own files). */
export function inClusterOptions(env: NodeJS.ProcessEnv = process.env, dir = SERVICE_ACCOUNT_DIR): KubeClientOptions {
  const host = env.KUBERNETES_SERVICE_HOST;
  if (!host) throw new Error('KUBERNETES_SERVICE_HOST is not set: not running in a pod');
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    // Re-read on every call: projected tokens rotate.
    token: () => fs.readFileSync(`${dir}/token`, 'utf8').trim(),
    ca: fs.readFileSync(`${dir}/ca.crt`),
  };
}

/**
 * The pod's client and namespace when this process runs in a pod with its service account token
 * mounted; null elsewhere (KUBERNETES_SERVICE_HOST unset, or automountServiceAccountToken: false).
 */
export function inClusterClient(env: NodeJS.ProcessEnv = process.env, dir = SERVICE_ACCOUNT_DIR): { client: KubeClient; namespace: string } | null {
  if (!env.KUBERNETES_SERVICE_HOST || !fs.existsSync(`${dir}/token`)) return null;
  return { client: new KubeClient(inClusterOptions(env, dir)), namespace: fs.readFileSync(`${dir}/namespace`, 'utf8').trim() };
}

export class KubeClient {
  private readonly url: URL;
  constructor(private readonly o: KubeClientOptions) {
    this.url = new URL(o.server);
  }

  private path(r: Resource, namespace: string, name?: string, sub?: string): string {
    return `${r.api}/namespaces/${encodeURIComponent(namespace)}/${r.plural}${name ? `/${encodeURIComponent(name)}` : ''}${sub ? `/${sub}` : ''}`;
  }

  private raw(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<http.IncomingMessage> {
    const lib = this.url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { authorization: `Bearer ${this.o.token()}`, accept: 'application/json' };
      const data = body === undefined ? undefined : JSON.stringify(body);
      if (data !== undefined) { headers['content-type'] = contentType; headers['content-length'] = String(Buffer.byteLength(data)); }
      const req = lib.request({
        protocol: this.url.protocol, hostname: this.url.hostname, port: this.url.port, path, method, headers,
        ...(this.o.ca ? { ca: this.o.ca } : {}),
      }, resolve);
      req.setTimeout(this.o.timeoutMs ?? 30_000, () => req.destroy(new Error(`${method} ${path}: timed out`)));
      req.on('error', reject);
      req.end(data);
    });
  }

  private async json(method: string, path: string, body?: unknown, contentType?: string): Promise<KubeObject & { items?: KubeObject[] }> {
    const res = await this.raw(method, path, body, contentType);
    let text = '';
    res.setEncoding('utf8');
    for await (const chunk of res) text += chunk;
    let parsed: KubeObject & { items?: KubeObject[]; reason?: string; message?: string };
    try { parsed = text ? JSON.parse(text) : {}; } catch { parsed = { message: text.slice(0, 300) }; }
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) {
      throw new KubeApiError(status, parsed?.reason ?? String(status), parsed?.message ?? `HTTP ${status}`, path);
    }
    return parsed;
  }

  create(r: Resource, namespace: string, obj: unknown): Promise<KubeObject> {
    return this.json('POST', this.path(r, namespace), obj);
  }
  get(r: Resource, namespace: string, name: string): Promise<KubeObject> {
    return this.json('GET', this.path(r, namespace, name));
  }
  async list(r: Resource, namespace: string, labelSelector: string): Promise<KubeObject[]> {
    const out = await this.json('GET', `${this.path(r, namespace)}?labelSelector=${encodeURIComponent(labelSelector)}`);
    return out.items ?? [];
  }
  /** PUT: the object's metadata.resourceVersion makes it a compare-and-swap (409 when another write came first). */
  replace(r: Resource, namespace: string, name: string, obj: unknown): Promise<KubeObject> {
    return this.json('PUT', this.path(r, namespace, name), obj);
  }
  /**
   * A strategic merge patch: lists such as containers and env merge by their `name` key, so a patch that
   * names one container's env vars leaves the image, ports and other vars alone (a JSON merge patch would
   * replace the whole list). Built-in kinds only; custom resources take merge patches.
   * (kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/)
   */
  patch(r: Resource, namespace: string, name: string, patch: unknown): Promise<KubeObject> {
    return this.json('PATCH', this.path(r, namespace, name), patch, 'application/strategic-merge-patch+json');
  }
  /** Foreground: the object stays (with a deletion timestamp) until its pods are gone. */
  delete(r: Resource, namespace: string, name: string): Promise<KubeObject> {
    return this.json('DELETE', this.path(r, namespace, name), { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Foreground' });
  }
  /** The pod's log of `container`, a stream; with follow it ends when the container does. */
  async logs(namespace: string, pod: string, container: string, follow: boolean): Promise<Readable> {
    const path = `${this.path(PODS, namespace, pod, 'log')}?container=${encodeURIComponent(container)}${follow ? '&follow=true' : ''}`;
    const res = await this.raw('GET', path);
    if ((res.statusCode ?? 0) >= 300) {
      let text = '';
      for await (const chunk of res) text += chunk;
      let parsed: { reason?: string; message?: string } = {};
      try { parsed = JSON.parse(text); } catch { /* plain text */ }
      throw new KubeApiError(res.statusCode ?? 0, parsed.reason ?? String(res.statusCode), parsed.message ?? text.slice(0, 300), path);
    }
    return res;
  }
}
