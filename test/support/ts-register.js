// Lets a plain `node` child process load src/*.ts (esbuild transpiles each file; no type check), so a
// test can look at what a real program's require.cache holds.
const { transformSync } = require('esbuild');
const { readFileSync } = require('fs');

require.extensions['.ts'] = (module, filename) => {
  const { code } = transformSync(readFileSync(filename, 'utf8'), { loader: 'ts', format: 'cjs', target: 'node20', sourcefile: filename });
  module._compile(code, filename);
};
