/** Synthesizes every example into one cdktf.out (the cdktf.json `app`, and `npm run synth`). */
import { App } from 'cdktf';
import { EXAMPLES } from './index';

const app = new App();
const stacks = Object.values(EXAMPLES).flatMap((build) => build(app));
app.synth();
process.stdout.write(`synthesized ${stacks.length} stacks into ${app.outdir}/stacks: ${stacks.map((s) => s.node.id).join(', ')}\n`);
