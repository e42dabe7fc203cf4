// The cross-cloud example: the serving stack reads the training stack's model location through
// cdktf cross-stack references (an output there, remote state here). test/examples.test.ts runs the
// checks every example gets; this adds what is particular to two stacks in one app.
import { Testing } from 'cdktf';
import { build } from '../../examples/cross-cloud/main';

describe('example cross-cloud', () => {
  test('serve-aws reads the model location trained on GCP through remote state and depends on train-gcp', () => {
    const stacks = build(Testing.app());
    // Cross-stack references exist only after prepareStack, which App.synth runs for every stack first.
    stacks.forEach((s) => s.prepareStack());
    const texts = new Map(stacks.map((s) => [s.node.id, Testing.synth(s, true)]));
    const serve = JSON.parse(texts.get('serve-aws')!);
    const train = JSON.parse(texts.get('train-gcp')!);
    const remote = serve.data.terraform_remote_state['cross-stack-reference-input-train-gcp'];
    expect(remote).toMatchObject({ backend: 'local', config: { path: '../../../terraform.train-gcp.tfstate' } });
    const outputs = Object.keys(train.output).filter((k) => k.startsWith('cross-stack-output-'));
    expect(outputs.length).toBe(1);
    const model = Object.values(serve.resource.aws_sagemaker_model)[0] as any;
    expect(model.primary_container.environment.MODEL_SOURCE_URI)
      .toMatch(new RegExp(`^gs://\\$\\{data\\.terraform_remote_state\\.cross-stack-reference-input-train-gcp\\.outputs\\.${outputs[0]}\\}/pipelines/`));
    expect(model.primary_container.environment.MODEL_URI).toBe('s3://ml-platform-models/ltv/current');
    expect(stacks[1].dependencies).toContain(stacks[0]);
  });
});
