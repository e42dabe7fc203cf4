/**
 * The pipeline spec as the agent reads it: the contract (src/contracts/pipeline-spec.ts, shared with
 * the TrainingPipeline construct) plus what only a host can check, the storage scheme of the artifacts.
 */
import { validatePipelineSpec as validateContract, PipelineSpecError, type PipelineSpec } from '../contracts/pipeline-spec';
import { schemeOf } from './storage/index';

export {
  canonicalJson, ENV_NAME, PIPELINE_NAME, PIPELINE_SPEC_SCHEMA, PIPELINE_SPEC_VERSION, PipelineSpecError, specHash, specId, STEP_NAME,
} from '../contracts/pipeline-spec';
export type { DeployIfBetterStepSpec, PipelineSpec, PipelineStepSpec, PipelineStepState, RunStepSpec } from '../contracts/pipeline-spec';

/**
 * Checks a parsed spec against the contract and that this agent can read its artifacts URI; returns it
 * with defaults filled in. Throws PipelineSpecError naming the step(s) and field.
 */
export function validatePipelineSpec(raw: unknown): PipelineSpec {
  const spec = validateContract(raw);
  try {
    schemeOf(spec.artifactsUri);
  } catch (e) {
    throw new PipelineSpecError(`artifactsUri: ${(e as Error).message}`, [], 'artifactsUri');
  }
  return spec;
}
