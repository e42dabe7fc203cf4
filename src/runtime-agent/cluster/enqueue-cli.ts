/** `run-pipeline SPEC --queue URL`: enqueues one run on the cluster's queue, as the pipeline's schedule does. */
import { pathToFileURL } from 'node:url';
import { openQueue } from '../queue/index';
import { enqueuePipelineRun } from './enqueue';

/** `serve --pipeline-on-start` is gone: every host that started ran the pipeline, so scale-outs raced. */
export const PIPELINE_ON_START_REMOVED = '--pipeline-on-start was removed: a TrainingPipeline schedule now enqueues one run on the cluster queue '
  + '(serve --queue leases it; exactly one host runs it). Enqueue a run by hand with `mlinfra-agent run-pipeline SPEC_URI --queue QUEUE_URL`, '
  + 'or run it on this host with `mlinfra-agent run-pipeline SPEC_URI`.';

/** Sends the pipeline-run message; returns the JSON line the CLI prints. Throws with the reason (nothing was enqueued). */
export async function enqueueRunFromCli(queueUrl: string, pipeline: string, specUri: string, env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  // the agent that leases the run reads the spec from where it is: a local path means a shared file:// mount
  const spec = /^(s3|gs|file):\/\//.test(specUri) ? specUri : pathToFileURL(specUri).href;
  const queue = openQueue(queueUrl, undefined, env);
  const r = await enqueuePipelineRun(queue, pipeline, spec);
  return { enqueued: true, pipeline, spec, queue: queue.kind, messageId: r.messageId };
}
