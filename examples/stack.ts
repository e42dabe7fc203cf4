import { App, LocalBackend, TerraformStack } from 'cdktf';
import { AwsNetworkAttributes, AwsTarget } from '../src';

/**
 * A stack whose state sits in the project root, named by a relative path: cdktf's default local
 * backend writes the absolute working directory into the JSON, which breaks byte-identical synth.
 */
export function exampleStack(app: App, id: string): TerraformStack {
  const stack = new TerraformStack(app, id);
  new LocalBackend(stack, { path: `../../../terraform.${id}.tfstate` });
  return stack;
}

const networks = new WeakMap<App, AwsNetworkAttributes>();

/**
 * The one AWS network the examples' stacks share (stack `network-aws`: a VPC, two private subnets,
 * a NAT gateway): five stacks with a VPC and a NAT address each would reach an account's default
 * quotas of 5 VPCs and 5 Elastic IPs per region. Deploy `network-aws` first; the others read it
 * through remote state.
 */
export function sharedAwsNetwork(app: App): AwsNetworkAttributes {
  let network = networks.get(app);
  if (!network) {
    const stack = exampleStack(app, 'network-aws');
    network = new AwsTarget(stack, 'aws', { region: 'us-east-1', tags: { team: 'ml-platform' } }).networkAttributes;
    networks.set(app, network);
  }
  return network;
}
