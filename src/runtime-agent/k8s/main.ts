/**
 * Entry points for the CLI: `mlinfra-agent gateway` (the stateless API on Kubernetes) and
 * `mlinfra-agent k8s-wrap -- COMMAND...` (a Job pod's entrypoint).
 */
import * as fs from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { buildGateway } from './gateway';
import { inClusterOptions, KubeClient, type KubeClientOptions } from './kube-client';
import type { GatewayConfig } from './objects';
import { runWrapped } from './wrapper';

export interface GatewayServeOptions {
  readonly host: string;
  readonly port: number;
  /** JSON GatewayConfig, written by the GpuCluster construct into a ConfigMap. */
  readonly configFile: string;
  /** The API bearer token (the cluster's token Secret, mounted). */
  readonly tokenFile: string;
  readonly version: string;
  /** @default - the pod's service account (KUBERNETES_SERVICE_HOST, mounted token and CA) */
  readonly kube?: KubeClientOptions;
}

const REQUIRED: ReadonlyArray<[keyof GatewayConfig, 'string' | 'number' | 'object']> = [
  ['namespace', 'string'], ['cluster', 'string'], ['localQueue', 'string'], ['gpusPerNode', 'number'], ['maxNodes', 'number'],
  ['image', 'string'], ['agentImage', 'string'], ['bundleConfigMap', 'string'], ['jobServiceAccount', 'string'],
  ['nodeSelector', 'object'], ['tolerations', 'object'], ['cpuPerGpu', 'number'], ['memoryGiBPerGpu', 'number'],
  ['artifactsUri', 'string'], ['labels', 'object'],
];

/** Reads and checks the gateway's configuration; the error names the file and the field. */
export function readGatewayConfig(file: string): GatewayConfig {
  let c: Record<string, unknown>;
  try {
    c = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`gateway config ${file}: ${(e as Error).message}`);
  }
  for (const [k, t] of REQUIRED) {
    if (typeof c[k] !== t || c[k] === null) throw new Error(`gateway config ${file}: ${k} must be a ${t}, got ${JSON.stringify(c[k])}`);
  }
  if (c.quotaGpus !== undefined && typeof c.quotaGpus !== 'number') throw new Error(`gateway config ${file}: quotaGpus must be a number when set`);
  if (c.storage !== undefined && (typeof c.storage !== 'object' || c.storage === null)) throw new Error(`gateway config ${file}: storage must be an object when set`);
  return c as unknown as GatewayConfig;
}

export async function serveGateway(o: GatewayServeOptions): Promise<{ url: string; app: FastifyInstance; close(): Promise<void> }> {
  const config = readGatewayConfig(o.configFile);
  const token = fs.readFileSync(o.tokenFile, 'utf8').trim();
  if (token.length < 16) throw new Error(`token file ${o.tokenFile}: the token must be at least 16 characters`);
  const app = await buildGateway({ config, kube: new KubeClient(o.kube ?? inClusterOptions()), token, version: o.version });
  const url = await app.listen({ host: o.host, port: o.port });
  let closed: Promise<void> | undefined;
  return { url, app, close: () => (closed ??= app.close()) };
}

/**
 * `k8s-wrap -- COMMAND...`: runs COMMAND (the CLI has already removed the leading `--`; a `--` inside
 * the command is the command's own) and returns the exit code for the process.
 */
export async function k8sWrapMain(command: readonly string[]): Promise<number> {
  const r = await runWrapped({ argv: command });
  return r.exitCode;
}
