/** Synthesizes every example into one cdktf.out (the cdktf.json `app`, and `npm run synth`). */
import { App, TerraformStack } from 'cdktf';
import { formatCostSummary, writeCostReport } from '../src/aspects/cost';
import { writePicture } from '../src/aspects/picture';
import { EXAMPLES } from './index';

async function main(): Promise<void> {
  const app = new App();
  for (const build of Object.values(EXAMPLES)) build(app);
  // Every stack, the ones examples share (network-aws) included.
  const stacks = app.node.children.filter((c): c is TerraformStack => c instanceof TerraformStack);
  app.synth();
  process.stdout.write(`synthesized ${stacks.length} stacks into ${app.outdir}/stacks: ${stacks.map((s) => s.node.id).join(', ')}\n`);
  // Beside each cdk.tf.json: cost.json (monthly list prices) and picture.dot/.svg (the construct graph).
  for (const stack of stacks) {
    process.stdout.write(`\n${formatCostSummary(writeCostReport(stack, app.outdir))}`);
    await writePicture(stack, app.outdir);
  }
  process.stdout.write(`\nwrote cost.json, picture.dot and picture.svg beside each stack\n`);
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exitCode = 1;
});
