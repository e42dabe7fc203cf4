/** Helpers for the pipeline tests: run `mlinfra-agent run-pipeline` (the bundle) and read a run directory. */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BUNDLE } from './helpers';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The JSON summary line (stdout), when there is one. */
  summary: any;
}

export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BUNDLE, ...args], {
      env: { ...process.env, MLINFRA_AGENT_URL: '', MLINFRA_AGENT_TOKEN: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
    p.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    p.on('exit', (code) => {
      let summary: unknown;
      try { summary = JSON.parse(stdout.trim().split('\n').pop() ?? ''); } catch { summary = undefined; }
      resolve({ code, stdout, stderr, summary });
    });
  });
}

export function writeSpec(dir: string, spec: unknown, name = 'pipeline.json'): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, JSON.stringify(spec, null, 2));
  return file;
}

export const readJson = (file: string): any => JSON.parse(fs.readFileSync(file, 'utf8'));

/** Every file under a directory, relative, sorted. */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(path.join(d, e.name), r);
      else out.push(r);
    }
  };
  if (fs.existsSync(dir)) walk(dir, '');
  return out.sort();
}
