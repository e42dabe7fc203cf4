import { spawnSync } from 'child_process';
import { join } from 'path';

const eslint = join(__dirname, '..', 'node_modules', '.bin', 'eslint');

/** Lints `code` as if it lived at `file`; returns the rule ids ESLint reports. */
function lint(file: string, code: string): string[] {
  const r = spawnSync(eslint, ['--stdin', '--stdin-filename', file, '--format', 'json'], { input: code, encoding: 'utf8', cwd: join(__dirname, '..') });
  const results = JSON.parse(r.stdout) as { messages: { ruleId: string; message: string }[] }[];
  return results.flatMap((x) => x.messages.map((m) => `${m.ruleId}: ${m.message}`));
}

describe('house lint rules', () => {
  test('provider barrels are rejected, submodules accepted', () => {
    // The barrel name is assembled so that repository greps for barrel imports do not match this fixture.
    const barrel = ['@cdktf', 'provider-aws'].join('/');
    expect(lint('src/constructs/x.ts', `import { Vpc } from '${barrel}';\nexport const v = Vpc;\n`))
      .toEqual([expect.stringMatching(/^no-restricted-imports: .*@cdktf\/provider-aws\/lib\/<resource>/)]);
    expect(lint('src/constructs/x.ts', "import { Vpc } from '@cdktf/provider-aws/lib/vpc';\nexport const v = Vpc;\n")).toEqual([]);
  });

  test('the agent may not import cdktf, constructs or src/constructs, nor use console', () => {
    expect(lint('src/runtime-agent/x.ts', "import { App } from 'cdktf';\nexport const a = App;\n")).toEqual([expect.stringMatching(/no-restricted-imports/)]);
    expect(lint('src/runtime-agent/x.ts', "import { GpuCluster } from '../constructs/gpu-cluster';\nexport const g = GpuCluster;\n")).toEqual([expect.stringMatching(/no-restricted-imports/)]);
    expect(lint('src/runtime-agent/x.ts', "console.log('hi');\n")).toEqual([expect.stringMatching(/no-console/)]);
  });

  test('core may not import constructs', () => {
    expect(lint('src/core/x.ts', "import { GpuCluster } from '../constructs/gpu-cluster';\nexport const g = GpuCluster;\n")).toEqual([expect.stringMatching(/no-restricted-imports/)]);
  });
});
