import { Testing } from 'cdktf';
import { existsSync } from 'fs';
import { join } from 'path';
import { build } from '../../examples/training-pipeline/main';
import { validatePipelineSpec } from '../../src/runtime-agent/pipeline';

/** The spec object each target stores: S3 object / GCS object content, or the ConfigMap's spec.json. */
function storedSpec(json: any): unknown {
  const objects = [
    ...Object.values(json.resource?.aws_s3_object ?? {}).filter((o: any) => /pipelines\/.+\/spec-[0-9a-f]{16}\.json$/.test(o.key)).map((o: any) => o.content),
    ...Object.values(json.resource?.google_storage_bucket_object ?? {}).filter((o: any) => /spec-[0-9a-f]{16}\.json$/.test(o.name)).map((o: any) => o.content),
    ...Object.values(json.resource?.kubernetes_config_map_v1 ?? {}).map((c: any) => c.data?.['spec.json']).filter(Boolean),
  ];
  expect(objects).toHaveLength(1);
  return JSON.parse(objects[0] as string);
}

describe('the spec TrainingPipeline stores is the spec mlinfra-agent runs', () => {
  test.each(build(Testing.app()).map((s) => [s.node.id, s] as const))('%s: accepted by the agent\'s validator, scripts exist', (_id, stack) => {
    const spec = validatePipelineSpec(storedSpec(JSON.parse(Testing.synth(stack, true))));
    expect(spec.steps.map((s) => s.name)).toEqual(['featurize', 'train_a', 'train_b', 'compare', 'promote']);
    for (const step of spec.steps) {
      if (step.kind !== 'run') continue;
      const script = step.argv.find((a) => a.endsWith('.py'));
      expect({ step: step.name, exists: !!script && existsSync(join(__dirname, '..', '..', 'examples', 'training-pipeline', script)) })
        .toEqual({ step: step.name, exists: true });
    }
    const compare = spec.steps.find((s) => s.name === 'compare');
    expect(compare && compare.kind === 'run' && compare.argv.slice(-2)).toEqual(['a', 'b']);
  });
});
