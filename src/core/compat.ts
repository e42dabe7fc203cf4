// A construct library must share the app's `constructs` (and `cdktf`): two copies make `new X(stack, ...)`
// fail deep inside constructs with an unhelpful TypeError. Catch it where the user can act on it.
import { Construct, IConstruct } from 'constructs';
import { Errors } from './errors';

const FIX = 'one copy of constructs@^10 in the app: `npm ls constructs` shows the copies; install cdktf-mlinfra '
  + 'next to the app\'s cdktf and constructs (they are peer dependencies) and run `npm dedupe`';

function versionOf(pkg: string): string {
  try {
    return (require(`${pkg}/package.json`) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Throws INCOMPATIBLE_PACKAGE unless `version` is a constructs 10.x release. */
export function checkConstructsVersion(id: string, version: string): void {
  if (!/^10\.\d+\.\d+/.test(version)) {
    throw Errors.incompatiblePackage(id, 'constructs', version, 'constructs@^10 (this library is built for constructs 10): npm install constructs@^10');
  }
}

/** Returns `scope` when it comes from the same `constructs` package this library uses; throws otherwise. */
export function sameConstructs<T extends IConstruct>(scope: T, id: string): T {
  const ours = versionOf('constructs');
  checkConstructsVersion(id, ours);
  if (!(scope instanceof Construct) && Construct.isConstruct(scope)) {
    throw Errors.incompatiblePackage(id, 'scope', `a Construct from another copy of constructs (this library has ${ours})`, FIX);
  }
  return scope;
}
