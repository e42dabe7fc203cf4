/**
 * Pipeline run ends on Kubernetes (`POST /v1/pipeline-runs`), kept in one ConfigMap the GpuCluster
 * creates (`runs.json`), so the stateless gateway's replicas all report the same
 * `mlinfra_pipeline_*` series and a restart loses nothing. Updates carry the read resourceVersion; a
 * conflict (another replica wrote first) is retried on the new version.
 */
import { CONFIGMAPS, KubeApiError, type KubeClient } from './kube-client';

export interface PipelineRunEnd {
  readonly pipeline: string;
  readonly state: 'succeeded' | 'failed';
  readonly runId: string;
  readonly endedAt: string;
}

interface PipelineTally { succeeded: number; failed: number; lastSuccess: number; recent: string[] }
type Runs = Record<string, PipelineTally>;

/** Run ids remembered per pipeline, so a report sent twice counts once. */
const RECENT = 50;

function parse(text: string | undefined): Runs {
  try {
    const v = JSON.parse(text ?? '{}');
    return v && typeof v === 'object' && !Array.isArray(v) ? v as Runs : {};
  } catch {
    return {};
  }
}

export async function readPipelineRuns(kube: KubeClient, namespace: string, name: string): Promise<Runs> {
  const cm = await kube.get(CONFIGMAPS, namespace, name) as { data?: Record<string, string> };
  return parse(cm.data?.['runs.json']);
}

/** Counts a run's end; false when that run was already counted. */
export async function recordPipelineRun(kube: KubeClient, namespace: string, name: string, e: PipelineRunEnd): Promise<boolean> {
  for (let attempt = 0; ; attempt++) {
    const cm = await kube.get(CONFIGMAPS, namespace, name) as { metadata?: Record<string, unknown>; data?: Record<string, string> };
    const runs = parse(cm.data?.['runs.json']);
    const t = runs[e.pipeline] ??= { succeeded: 0, failed: 0, lastSuccess: 0, recent: [] };
    if (t.recent.includes(e.runId)) return false;
    t[e.state] += 1;
    if (e.state === 'succeeded') t.lastSuccess = Math.max(t.lastSuccess, Math.floor(Date.parse(e.endedAt) / 1000));
    t.recent = [...t.recent, e.runId].slice(-RECENT);
    try {
      await kube.replace(CONFIGMAPS, namespace, name, { ...cm, data: { ...cm.data, 'runs.json': JSON.stringify(runs) } });
      return true;
    } catch (err) {
      if (!(err instanceof KubeApiError && err.status === 409) || attempt >= 5) throw err;
    }
  }
}

/** The agent's pipeline series, from the record. */
export function pipelineMetricsText(runs: Runs): string {
  const names = Object.keys(runs).sort();
  if (!names.length) return '';
  const q = (s: string) => JSON.stringify(s);
  return [
    '# HELP mlinfra_pipeline_runs_total Pipeline runs that ended, by outcome.', '# TYPE mlinfra_pipeline_runs_total counter',
    ...names.flatMap((p) => (['succeeded', 'failed'] as const).map((s) => `mlinfra_pipeline_runs_total{pipeline=${q(p)},state=${q(s)}} ${runs[p][s] ?? 0}`)),
    '# HELP mlinfra_pipeline_last_success_timestamp_seconds End time (Unix seconds) of the latest successful run of a pipeline.',
    '# TYPE mlinfra_pipeline_last_success_timestamp_seconds gauge',
    ...names.filter((p) => runs[p].lastSuccess > 0).map((p) => `mlinfra_pipeline_last_success_timestamp_seconds{pipeline=${q(p)}} ${runs[p].lastSuccess}`),
  ].join('\n') + '\n';
}
