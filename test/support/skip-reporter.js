// Prints one line at the end of a run naming the suites skipped for a missing system tool and the
// command that installs them (see test/support/tools.ts).
const INSTALL = {
  'python3-torch': 'python3-torch', promtool: 'prometheus', prometheus: 'prometheus', amtool: 'prometheus-alertmanager', 'redis-server': 'redis-server',
};

class SkipReporter {
  constructor() { this.skipped = new Map(); }
  onTestResult(_test, result) {
    for (const r of result.testResults) {
      const title = r.ancestorTitles.find((t) => t.startsWith('[needs '));
      if (r.status !== 'pending' || !title) continue;
      const tools = title.slice(7, title.indexOf(']')).split(', ');
      const file = result.testFilePath.split(/[\\/]test[\\/]/).pop();
      for (const t of tools) (this.skipped.get(t) ?? this.skipped.set(t, new Set()).get(t)).add(file);
    }
  }
  onRunComplete() {
    if (this.skipped.size === 0) return;
    const parts = [...this.skipped].map(([tool, files]) => `${tool} (${[...files].join(', ')})`);
    const pkgs = [...new Set([...this.skipped.keys()].map((t) => INSTALL[t] ?? t))].join(' ');
    process.stdout.write(`\nSkipped for missing tools: ${parts.join('; ')}. Install: sudo apt-get install -y --no-install-recommends ${pkgs}\n`);
  }
}
module.exports = SkipReporter;
