import { App, TerraformStack } from 'cdktf';
import { build as crossCloud } from './cross-cloud/main';
import { build as featureStore } from './feature-store/main';
import { build as gpuClusters } from './gpu-clusters/main';
import { build as importedCluster } from './imported-cluster/main';
import { build as modelEndpoint } from './model-endpoint/main';
import { build as monitoringStack } from './monitoring-stack/main';
import { build as platform } from './platform/main';
import { build as trainingPipeline } from './training-pipeline/main';

/** Every example app, by directory name: synthesized by `npm run synth` and by the tests. */
export const EXAMPLES: Record<string, (app: App) => TerraformStack[]> = {
  'gpu-clusters': gpuClusters,
  'feature-store': featureStore,
  'model-endpoint': modelEndpoint,
  'training-pipeline': trainingPipeline,
  'monitoring-stack': monitoringStack,
  'platform': platform,
  'cross-cloud': crossCloud,
  'imported-cluster': importedCluster,
};
