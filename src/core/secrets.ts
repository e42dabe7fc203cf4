import { TerraformStack } from 'cdktf';
import { Construct } from 'constructs';
import { lazyClass, requireProvider } from './lazy';

// Provider classes load on first use (see core/lazy.ts).
const Password = lazyClass(() => requireProvider('random', () => (require('@cdktf/provider-random/lib/password') as typeof import('@cdktf/provider-random/lib/password')).Password));
type Password = import('@cdktf/provider-random/lib/password').Password;
const RandomProvider = lazyClass(() => requireProvider('random', () => (require('@cdktf/provider-random/lib/provider') as typeof import('@cdktf/provider-random/lib/provider')).RandomProvider));
type RandomProvider = import('@cdktf/provider-random/lib/provider').RandomProvider;

const PROVIDER_ID = 'mlinfra-random';

/** The stack's one random provider, created on first use. */
export function randomProvider(scope: Construct): RandomProvider {
  const stack = TerraformStack.of(scope);
  const existing = stack.node.tryFindChild(PROVIDER_ID);
  return (existing as RandomProvider | undefined) ?? new RandomProvider(stack, PROVIDER_ID, { alias: 'mlinfra' });
}

/**
 * A generated secret value. Its `result` is a reference resolved at apply time: it lives in the
 * Terraform state and in the secret store it is written to, never in the synthesized JSON.
 */
export function generatedSecret(scope: Construct, id: string, length = 48): Password {
  return new Password(scope, id, { provider: randomProvider(scope), length, special: false });
}

/** Where a secret lives: a reference users and other constructs can pass around, never the value. */
export type SecretRef =
  | { readonly store: 'aws-secrets-manager'; readonly arn: string; readonly name: string }
  | { readonly store: 'gcp-secret-manager'; readonly project: string; readonly secretId: string }
  | { readonly store: 'kubernetes-secret'; readonly namespace: string; readonly name: string; readonly key: string };
