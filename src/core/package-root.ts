import { existsSync, readFileSync } from 'fs';
import { dirname, join } from 'path';
import { Errors } from './errors';

/** This package's root directory, found from the running file (src/ under ts, lib/src/ compiled). */
export function packageRoot(from: string = __dirname): string {
  let dir = from;
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, 'utf8')).name === 'cdktf-mlinfra') return dir;
    const up = dirname(dir);
    if (up === dir) throw Errors.missingFile('cdktf-mlinfra', 'package root', join(from, 'package.json'), 'install cdktf-mlinfra as a package (its package.json names it), or set agentBundleDir');
    dir = up;
  }
}
