import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort, startAgent, stopAllAgents, tmpDir, waitFor } from './helpers';
import { describeWithTools, TOOLS } from '../support/tools';

const PROMETHEUS = '/usr/bin/prometheus';
let prom: ChildProcess | undefined;

afterAll(async () => {
  if (prom && prom.exitCode === null) {
    prom.kill('SIGTERM');
    await new Promise((r) => prom!.on('exit', r));
  }
  await stopAllAgents();
});

describeWithTools([TOOLS.prometheus])('a real Prometheus scrapes /metrics with the bearer token', () => {
  test('up == 1 and agent metrics are queryable', async () => {
    expect(fs.existsSync(PROMETHEUS)).toBe(true);
    const agent = await startAgent({ args: ['--gpus', '2'] });
    const id = await agent.submit({ argv: ['true'] });
    await agent.waitJob(id);
    const dir = tmpDir();
    const port = await freePort();
    fs.writeFileSync(path.join(dir, 'prometheus.yml'), [
      'global:',
      '  scrape_interval: 1s',
      'scrape_configs:',
      '  - job_name: mlinfra-agent',
      '    authorization:',
      `      credentials_file: ${agent.tokenFile}`,
      '    static_configs:',
      `      - targets: ['127.0.0.1:${agent.port}']`,
      '',
    ].join('\n'));
    let out = '';
    prom = spawn(PROMETHEUS, [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    prom.stdout!.on('data', (c: Buffer) => { out += c.toString(); });
    prom.stderr!.on('data', (c: Buffer) => { out += c.toString(); });
    const query = async (q: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> => {
      const res = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(q)}`);
      const body = (await res.json()) as { status: string; data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
      return body.status === 'success' ? body.data.result : [];
    };
    try {
      const up = await waitFor('up == 1', async () => {
        const r = await query('up{job="mlinfra-agent"}');
        return r.length === 1 && r[0].value[1] === '1' ? r : undefined;
      }, 40_000, 500);
      expect(up[0].metric.instance).toBe(`127.0.0.1:${agent.port}`);
      const gpus = await waitFor('mlinfra_agent_gpus', async () => (await query('mlinfra_agent_gpus')).find((r) => r.value[1] === '2'), 20_000, 500);
      expect(gpus.metric.job).toBe('mlinfra-agent');
      const finished = await query('mlinfra_agent_jobs_finished_total{state="succeeded"}');
      expect(finished[0].value[1]).toBe('1');
    } catch (e) {
      throw new Error(`${(e as Error).message}\nprometheus output:\n${out.slice(-3000)}`);
    }
  }, 60_000);
});
