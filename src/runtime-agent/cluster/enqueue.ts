import type { Logger } from 'pino';
import { AgentError } from '../errors';
import type { JobQueue } from '../queue/index';
import type { JobSpec } from '../types';
import { pipelineRunBody } from './pipeline-runs';
import { isPreconditionFailed, newClusterJobId, type ClusterJob, type ClusterMessage, type ClusterStore } from './records';

/** Sends a body; 413 for a message the queue cannot take, 503 when the queue did not take it (nothing enqueued). */
export async function sendOrRefuse(queue: JobQueue, body: string, what: string): Promise<string> {
  const bytes = Buffer.byteLength(body);
  if (bytes > queue.maxMessageBytes) {
    throw new AgentError(413, 'payload_too_large', `the ${what} is ${bytes} bytes as a queue message; the ${queue.kind} queue takes at most ${queue.maxMessageBytes}: put large inputs in the bucket and pass their URI`, 'body');
  }
  try {
    return await queue.send(body);
  } catch (e) {
    throw new AgentError(503, 'queue_unavailable', `the cluster queue did not accept the ${what} (nothing was enqueued; retry): ${(e as Error).message}`, undefined, { retryAfterSeconds: 5 });
  }
}

/** Enqueues a job for the cluster and creates its record. */
export async function enqueueJob(queue: JobQueue, store: ClusterStore, spec: JobSpec, logger: Logger): Promise<ClusterJob> {
  const id = newClusterJobId();
  const now = new Date().toISOString();
  await sendOrRefuse(queue, JSON.stringify({ v: 1, id, spec, submittedAt: now } satisfies ClusterMessage), 'job');
  const job: ClusterJob = { id, spec, state: 'queued', createdAt: now, updatedAt: now, attempts: [] };
  // Created only if absent (one conditional write): a host that leased the job meanwhile wrote a newer
  // record (an exists-then-write here once reset attempt 1, and a second host started attempt 1 again).
  // A record not written here is written by the host that leases the job.
  try {
    await store.put(job, null);
  } catch (e) {
    if (!isPreconditionFailed(e)) logger.warn({ jobId: id, err: (e as Error).message }, 'cluster job record not written at submit');
  }
  return job;
}

/** Enqueues one run of a pipeline: the message a schedule sends. Throws 400 on a bad name or URI. */
export async function enqueuePipelineRun(queue: JobQueue, pipeline: string, spec: string): Promise<{ messageId: string; body: string }> {
  let body: string;
  try {
    body = pipelineRunBody(pipeline, spec);
  } catch (e) {
    throw new AgentError(400, 'invalid_pipeline_run', (e as Error).message, 'body');
  }
  return { messageId: await sendOrRefuse(queue, body, 'pipeline run'), body };
}
