import { execFileSync } from 'child_process';
import { join } from 'path';

const root = join(__dirname, '..');
const FIXTURES: [file: string, code: string][] = [];
let results: Map<string, string[]> | undefined;

/**
 * Lints `code` as if it lived at `file`; returns the rule ids ESLint reports. Fixtures are collected
 * first and linted in one ESLint process (one start-up instead of one per fixture); the flat config is
 * an ES module, which jest's VM cannot import in-process.
 */
function lint(file: string, code: string): string[] {
  if (!results) throw new Error('lint() before the batch ran');
  return results.get(`${file}\n${code}`)!;
}
function fixture(file: string, code: string): [string, string] {
  FIXTURES.push([file, code]);
  return [file, code];
}

beforeAll(() => {
  const script = `const { ESLint } = require('eslint');
    (async () => {
      const eslint = new ESLint({ cwd: process.cwd() });
      const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
      const out = [];
      for (const [file, code] of input) {
        const [r] = await eslint.lintText(code, { filePath: require('path').join(process.cwd(), file) });
        out.push([file + '\\n' + code, r.messages.map((m) => m.ruleId + ': ' + m.message)]);
      }
      process.stdout.write(JSON.stringify(out));
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const out = execFileSync(process.execPath, ['-e', script], { cwd: root, input: JSON.stringify(FIXTURES), encoding: 'utf8' });
  results = new Map(JSON.parse(out));
}, 120_000);

// The barrel name is assembled so that repository greps for barrel imports do not match this fixture.
const barrel = ['@cdktf', 'provider-aws'].join('/');
const F = {
  barrel: fixture('src/constructs/x.ts', `import { Vpc } from '${barrel}';\nexport const v = Vpc;\n`),
  submodule: fixture('src/constructs/x.ts', "import { Vpc } from '@cdktf/provider-aws/lib/vpc';\nexport const v = Vpc;\n"),
  agentCdktf: fixture('src/runtime-agent/x.ts', "import { App } from 'cdktf';\nexport const a = App;\n"),
  agentConstruct: fixture('src/runtime-agent/x.ts', "import { GpuCluster } from '../constructs/gpu-cluster';\nexport const g = GpuCluster;\n"),
  agentConsole: fixture('src/runtime-agent/x.ts', "console.log('hi');\n"),
  coreConstruct: fixture('src/core/x.ts', "import { GpuCluster } from '../constructs/gpu-cluster';\nexport const g = GpuCluster;\n"),
  lazyRequire: fixture('src/constructs/x/index.ts', "export const b = () => require('./aws') as unknown;\n"),
  testRequire: fixture('test/x.test.ts', "export const b = () => require('./aws') as unknown;\n"),
};

describe('house lint rules', () => {
  test('provider barrels are rejected, submodules accepted', () => {
    expect(lint(...F.barrel)).toEqual([expect.stringMatching(/^no-restricted-imports: .*@cdktf\/provider-aws\/lib\/<resource>/)]);
    expect(lint(...F.submodule)).toEqual([]);
  });

  test('the agent may not import cdktf, constructs or src/constructs, nor use console', () => {
    expect(lint(...F.agentCdktf)).toEqual([expect.stringMatching(/no-restricted-imports/)]);
    expect(lint(...F.agentConstruct)).toEqual([expect.stringMatching(/no-restricted-imports/)]);
    expect(lint(...F.agentConsole)).toEqual([expect.stringMatching(/no-console/)]);
  });

  test('core may not import constructs', () => {
    expect(lint(...F.coreConstruct)).toEqual([expect.stringMatching(/no-restricted-imports/)]);
  });

  test('require() is allowed only for load-on-first-use in the library, not elsewhere', () => {
    expect(lint(...F.lazyRequire)).toEqual([]);
    expect(lint(...F.testRequire)).toEqual([expect.stringMatching(/no-require-imports/)]);
  });
});
