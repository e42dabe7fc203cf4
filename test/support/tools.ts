// System tools some suites need. Missing on a developer's machine: the suite is skipped and named in
// one summary line at the end of the run (test/support/skip-reporter.js). Under CI=true a missing tool
// fails the run instead, with the command that installs it.
import { spawnSync } from 'child_process';
import { existsSync } from 'fs';

export interface Tool {
  readonly name: string;
  readonly install: string;
  readonly present: () => boolean;
}

export const TOOLS = {
  torch: {
    name: 'python3-torch',
    install: 'apt-get install -y --no-install-recommends python3-torch',
    present: () => existsSync('/usr/bin/python3') && spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore', timeout: 60_000 }).status === 0,
  },
  promtool: { name: 'promtool', install: 'apt-get install -y --no-install-recommends prometheus', present: () => existsSync('/usr/bin/promtool') },
  prometheus: { name: 'prometheus', install: 'apt-get install -y --no-install-recommends prometheus', present: () => existsSync('/usr/bin/prometheus') },
  amtool: { name: 'amtool', install: 'apt-get install -y --no-install-recommends prometheus-alertmanager', present: () => existsSync('/usr/bin/amtool') },
  redis: { name: 'redis-server', install: 'apt-get install -y --no-install-recommends redis-server', present: () => existsSync('/usr/bin/redis-server') },
  pubsubEmulator: {
    name: 'pubsub-emulator',
    install: 'apt-get install -y --no-install-recommends google-cloud-cli google-cloud-cli-pubsub-emulator openjdk-17-jre-headless',
    // the emulator component beside gcloud, and the Java it runs on
    present: () => spawnSync('sh', ['-c', 'test -x "$(dirname "$(readlink -f "$(command -v gcloud)")")/../platform/pubsub-emulator/bin/cloud-pubsub-emulator" && command -v java'], { stdio: 'ignore' }).status === 0,
  },
} satisfies Record<string, Tool>;

/** The marker the skip reporter looks for in a skipped suite's title. */
export const SKIP_MARK = '[needs ';

/**
 * `describe` when every tool is present; otherwise `describe.skip` with a title naming the tools
 * (the reporter collects it), or, under CI=true, a thrown error naming what to install.
 */
export function describeWithTools(tools: Tool[]): jest.Describe {
  const missing = tools.filter((t) => !t.present());
  if (missing.length === 0) return describe;
  const names = missing.map((t) => t.name).join(', ');
  if (process.env.CI === 'true') {
    throw new Error(`CI=true and ${names} is missing; install it: ${[...new Set(missing.map((t) => t.install))].join(' && ')}`);
  }
  const skipped = ((title: string, fn: () => void) => describe.skip(`${SKIP_MARK}${names}] ${title}`, fn)) as unknown as jest.Describe;
  return skipped;
}
