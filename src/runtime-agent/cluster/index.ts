import type { FastifyInstance } from 'fastify';
import { registerGangRoutes } from './gang-routes';
import { resolveClusterOptions, type ClusterOptionsInput } from './options';
import { registerClusterRoutes } from './routes';
import { ClusterWorker, type ClusterWorkerDeps } from './worker';

export { resolveClusterOptions, type ClusterOptions, type ClusterOptionsInput } from './options';
export { ClusterWorker } from './worker';

/** Opens the cluster's queue, adds the /v1/cluster routes (before the server listens) and starts leasing. */
export function startCluster(input: ClusterOptionsInput, app: FastifyInstance, deps: Omit<ClusterWorkerDeps, 'options'>): ClusterWorker {
  const worker = new ClusterWorker({ ...deps, options: resolveClusterOptions(input) });
  registerClusterRoutes(app, worker);
  registerGangRoutes(app, worker, { ...deps, options: resolveClusterOptions(input) });
  worker.start();
  return worker;
}
