import { App, LocalBackend, TerraformStack } from 'cdktf';

/**
 * A stack whose state sits in the project root, named by a relative path: cdktf's default local
 * backend writes the absolute working directory into the JSON, which breaks byte-identical synth.
 */
export function exampleStack(app: App, id: string): TerraformStack {
  const stack = new TerraformStack(app, id);
  new LocalBackend(stack, { path: `../../../terraform.${id}.tfstate` });
  return stack;
}
