#!/usr/bin/env node
// Fails when docs/api (the generated API reference) differs from what `npm run docs` writes now.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = mkdtempSync(join(tmpdir(), 'mlinfra-docs-'));
const files = (dir) => {
  const acc = new Map();
  const walk = (d) => readdirSync(d).forEach((n) => {
    const p = join(d, n);
    if (statSync(p).isDirectory()) walk(p);
    else acc.set(relative(dir, p), readFileSync(p, 'utf8'));
  });
  walk(dir);
  return acc;
};
try {
  execFileSync(join(root, 'node_modules', '.bin', 'typedoc'), ['--out', out], { cwd: root, stdio: 'inherit' });
  const want = files(out);
  const have = files(join(root, 'docs', 'api'));
  const stale = [...new Set([...want.keys(), ...have.keys()])].filter((k) => want.get(k) !== have.get(k)).sort();
  if (stale.length) {
    process.stderr.write(`docs/api is stale (${stale.length} files differ, e.g. ${stale.slice(0, 5).join(', ')}): run \`npm run docs\` and commit docs/api\n`);
    process.exit(1);
  }
  process.stdout.write(`docs/api is current (${want.size} files)\n`);
} finally {
  rmSync(out, { recursive: true, force: true });
}
