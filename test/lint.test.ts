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
  // Layers: constructs meet through public indexes; aspects read indexes and metadata; core stands alone.
  otherIndex: fixture('src/constructs/a/index.ts', "import { GpuCluster } from '../gpu-cluster';\nimport { IGpuCluster } from '../gpu-cluster/index';\nexport const g: [unknown, IGpuCluster?] = [GpuCluster];\n"),
  ownFile: fixture('src/constructs/a/aws.ts', "import { Plan } from './plan';\nexport type P = Plan;\n"),
  otherInternal: fixture('src/constructs/a/aws.ts', "import { HOST_METRICS } from '../gpu-cluster/bootstrap';\nexport const m = HOST_METRICS;\n"),
  otherInternalType: fixture('src/constructs/a/plan.ts', "import type { AwsGpuClusterResources } from '../gpu-cluster/aws';\nexport type R = AwsGpuClusterResources;\n"),
  otherInternalReexport: fixture('src/constructs/a/index.ts', "export { HOST_METRICS } from '../gpu-cluster/bootstrap';\n"),
  otherInternalRequire: fixture('src/constructs/a/index.ts', "export const b = () => require('../gpu-cluster/aws') as unknown;\n"),
  constructAspects: fixture('src/constructs/a/gcp.ts', "import { Policy } from '../../aspects/policy/policy';\nexport const p = Policy;\n"),
  constructAspectsIndex: fixture('src/constructs/a/gcp.ts', "import { Policy } from '../../aspects';\nexport const p = Policy;\n"),
  aspectIndex: fixture('src/aspects/cost/report.ts', "import { ModelEndpoint } from '../../constructs/model-endpoint';\nexport const e = ModelEndpoint;\n"),
  aspectBackend: fixture('src/aspects/cost/report.ts', "import { buildAwsModelEndpoint } from '../../constructs/model-endpoint/aws';\nexport const b = buildAwsModelEndpoint;\n"),
  aspectBackendRequire: fixture('src/aspects/policy/rules/x.ts', "export const b = () => require('../../../constructs/model-endpoint/aws') as unknown;\n"),
  coreConstructRequire: fixture('src/core/x.ts', "export const b = () => require('../constructs/gpu-cluster') as unknown;\n"),
  coreConstructsPackage: fixture('src/core/x.ts', "import { Construct } from 'constructs';\nexport const c = Construct;\n"),
  // Errors: factories only; template text that happens to read `new Error` is not code.
  constructError: fixture('src/constructs/a/aws.ts', "export function f(): never {\n  throw new Error('bad');\n}\n"),
  coreRangeError: fixture('src/core/x.ts', "export function f(): never {\n  throw new RangeError('bad');\n}\n"),
  coreErrorCall: fixture('src/core/x.ts', "export function f(): never {\n  throw Error('bad');\n}\n"),
  scriptText: fixture('src/constructs/a/kubernetes.ts', "export const js = `if (!ok) throw new Error('scale failed: ' + code);`;\n"),
  agentError: fixture('src/runtime-agent/x.ts', "export function f(): never {\n  throw new Error('bad');\n}\n"),
  contractCore: fixture('src/contracts/x.ts', "import { Errors } from '../core/errors';\nexport const e = Errors;\n"),
  contractCdktf: fixture('src/contracts/x.ts', "import { Token } from 'cdktf';\nexport const t = Token;\n"),
  contractNode: fixture('src/contracts/x.ts', "import { createHash } from 'node:crypto';\nexport const h = createHash;\n"),
  contractTypeOnly: fixture('src/contracts/x.ts', "import type { IConstruct } from 'constructs';\nexport type C = IConstruct;\n"),
  contractConstructs: fixture('src/contracts/x.ts', "import { Construct } from 'constructs';\nexport const c = Construct;\n"),
  agentContract: fixture('src/runtime-agent/x.ts', "import { canonicalJson } from '../contracts/pipeline-spec';\nexport const c = canonicalJson;\n"),
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

  test('a construct imports another construct only through its public index', () => {
    expect(lint(...F.otherIndex)).toEqual([]);
    expect(lint(...F.ownFile)).toEqual([]);
    for (const f of [F.otherInternal, F.otherInternalType, F.otherInternalReexport]) {
      expect(lint(...f)).toEqual([expect.stringMatching(/^no-restricted-imports: .*only through its public index/)]);
    }
    expect(lint(...F.otherInternalRequire)).toEqual([expect.stringMatching(/^no-restricted-syntax: .*only through its public index/)]);
  });

  test('a construct never imports aspects/, not even its index', () => {
    expect(lint(...F.constructAspects)).toEqual([expect.stringMatching(/^no-restricted-imports: .*never import aspects/)]);
    expect(lint(...F.constructAspectsIndex)).toEqual([expect.stringMatching(/^no-restricted-imports: .*never import aspects/)]);
  });

  test('aspects/ import a construct\'s index, never a backend (import or require)', () => {
    expect(lint(...F.aspectIndex)).toEqual([]);
    expect(lint(...F.aspectBackend)).toEqual([expect.stringMatching(/^no-restricted-imports: .*never a backend/)]);
    expect(lint(...F.aspectBackendRequire)).toEqual([expect.stringMatching(/^no-restricted-syntax: .*never a backend/)]);
  });

  test('core may not require constructs either; the constructs package is fine', () => {
    expect(lint(...F.coreConstructRequire)).toEqual([expect.stringMatching(/^no-restricted-syntax: .*imports nothing from constructs/)]);
    expect(lint(...F.coreConstructsPackage)).toEqual([]);
  });

  test('bare Error / RangeError are banned in constructs and core, not in template text nor in the agent', () => {
    expect(lint(...F.constructError)).toEqual([expect.stringMatching(/^no-restricted-syntax: No bare Error .*core\/errors\.ts/)]);
    expect(lint(...F.coreRangeError)).toEqual([expect.stringMatching(/^no-restricted-syntax: No bare RangeError/)]);
    expect(lint(...F.coreErrorCall)).toEqual([expect.stringMatching(/^no-restricted-syntax: No bare Error\(\)/)]);
    expect(lint(...F.scriptText)).toEqual([]);
    expect(lint(...F.agentError)).toEqual([]);
  });

  test('contracts stand alone: Node built-ins (and erased type imports) only; the agent may import them', () => {
    expect(lint(...F.contractCore)).toEqual([expect.stringMatching(/^@typescript-eslint\/no-restricted-imports: .*imports neither side/)]);
    expect(lint(...F.contractCdktf)).toEqual([expect.stringMatching(/^@typescript-eslint\/no-restricted-imports: .*no cdktf/)]);
    expect(lint(...F.contractConstructs)).toEqual([expect.stringMatching(/^@typescript-eslint\/no-restricted-imports: .*no constructs/)]);
    expect(lint(...F.contractTypeOnly)).toEqual([]);
    expect(lint(...F.contractNode)).toEqual([]);
    expect(lint(...F.agentContract)).toEqual([]);
  });

  test('require() is allowed only for load-on-first-use in the library, not elsewhere', () => {
    expect(lint(...F.lazyRequire)).toEqual([]);
    expect(lint(...F.testRequire)).toEqual([expect.stringMatching(/no-require-imports/)]);
  });
});
