import { AgentError } from './errors';

/**
 * `mlinfra-agent submit --nodes N`: POST /v1/cluster/gangs on any host of a cluster (serve --queue).
 * Returns the gang's JSON; errors as AgentError with the agent's code, message and field.
 */
export async function submitGang(url: string, token: string, body: Record<string, unknown>): Promise<{ id: string; nodes: number; state: string }> {
  const res = await fetch(`${url.replace(/\/+$/, '')}/v1/cluster/gangs`, {
    method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  const text = await res.text();
  let json: { id: string; nodes: number; state: string; error?: { code?: string; message?: string; field?: string } };
  try {
    json = JSON.parse(text) as typeof json;
  } catch {
    throw new AgentError(res.status >= 400 ? res.status : 502, 'http_error', `HTTP ${res.status}: ${text.slice(0, 200)}`);
  }
  if (res.status === 404 && !json.error?.message?.startsWith('no gang')) {
    throw new AgentError(404, 'no_cluster_queue', `${url} has no cluster queue: multi-node jobs need an agent started with serve --queue (or a Kubernetes gateway)`);
  }
  if (!res.ok) throw new AgentError(res.status, json.error?.code ?? 'http_error', json.error?.message ?? `HTTP ${res.status}`, json.error?.field);
  return json;
}

/** The CLI's `submit --nodes N` (N > 1): prints the gang's id. `--follow` is for one-node jobs. */
export async function submitGangCli(o: Record<string, unknown>, env: NodeJS.ProcessEnv, token: string | undefined, spec: Record<string, unknown>,
  out: (text: string) => Promise<unknown>): Promise<number> {
  if (!token) throw new AgentError(401, 'no_token', 'no token: pass --token-file FILE or set MLINFRA_AGENT_TOKEN');
  if (o.follow) throw new AgentError(400, 'bad_request', '--follow is for one-node jobs: follow a gang with GET /v1/cluster/gangs/ID and its ranks\' logs', 'follow');
  const url = (o.url as string | undefined) ?? env.MLINFRA_AGENT_URL ?? 'http://127.0.0.1:7070';
  const g = await submitGang(url, token, { ...spec, gpus: undefined, nodes: o.nodes, gpusPerNode: o.gpusPerNode ?? o.gpus, gangTimeoutSeconds: o.gangTimeoutSeconds });
  await out(`${g.id}\n`);
  return 0;
}
