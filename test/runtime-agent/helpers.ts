/** Helpers for the agent tests: start the real bundle, talk to it over HTTP, wait for states. */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');
/** MLINFRA_AGENT_TEST_BUNDLE runs the tests against another build (e.g. the previous release, to see a fault test fail). */
export const BUNDLE = process.env.MLINFRA_AGENT_TEST_BUNDLE ?? path.join(ROOT, 'dist', 'agent', 'mlinfra-agent.js');
export const FIXTURES = path.join(__dirname, 'fixtures');
/** Example job scripts users can copy (examples/agent-jobs), run for real by the tests. */
export const AGENT_JOBS = path.join(ROOT, 'examples', 'agent-jobs');
export const PYTHON = '/usr/bin/python3';
export const TERMINAL = ['succeeded', 'failed', 'cancelled', 'interrupted'];

export function requireBundle(): void {
  if (!fs.existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run \`npm run build:agent\` first (npm test does)`);
}

const tmpDirs = new Set<string>();

/** A fresh temp directory, removed by stopAllAgents() (call it in afterAll). */
export function tmpDir(prefix = 'mlinfra-agent-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpDirs.add(dir);
  return dir;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | null | false> | T | undefined | null | false, timeoutMs = 20_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as T;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(everyMs);
  }
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

export interface StartOptions {
  readonly dataDir?: string;
  readonly token?: string;
  readonly args?: string[];
  readonly env?: NodeJS.ProcessEnv;
  readonly port?: number;
  /** Another copy of the bundle to run (e.g. one with another file name). */
  readonly bundle?: string;
}

export interface AgentHandle {
  readonly url: string;
  readonly port: number;
  readonly token: string;
  readonly tokenFile: string;
  readonly dataDir: string;
  readonly proc: ChildProcess;
  readonly pid: number;
  output(): string;
  api(method: string, p: string, body?: any, headers?: Record<string, string>): Promise<ApiResponse>;
  submit(spec: Record<string, unknown>): Promise<string>;
  job(id: string): Promise<any>;
  waitJob(id: string, states?: string[], timeoutMs?: number): Promise<any>;
  exited(): Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

const started = new Set<AgentHandle>();

/** Starts `node dist/agent/mlinfra-agent.js serve` on 127.0.0.1 with a temp data dir. */
export async function startAgent(o: StartOptions = {}): Promise<AgentHandle> {
  requireBundle();
  const dataDir = o.dataDir ?? tmpDir();
  const token = o.token ?? 'test-token-0123456789';
  const tokenFile = path.join(dataDir, '..', `${path.basename(dataDir)}.token`);
  fs.writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  const port = o.port ?? 0;
  const proc = spawn(process.execPath, [o.bundle ?? BUNDLE, 'serve', '--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir,
    '--token-file', tokenFile, '--grace-seconds', '2', ...(o.args ?? [])], {
    env: { ...process.env, ...o.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => { out += c.toString(); });
  proc.stderr!.on('data', (c: Buffer) => { out += c.toString(); });
  const exitP = new Promise<number | null>((resolve) => proc.on('exit', (code, sig) => resolve(code ?? (sig ? -1 : null))));
  const found = await waitFor('the agent to listen', () =>
    /"url":"(http:\/\/127\.0\.0\.1:\d+)"[^\n]*"msg":"listening"/.exec(out)?.[1] ?? (proc.exitCode !== null || proc.signalCode !== null ? 'EXITED' : undefined), 20_000, 20);
  if (found === 'EXITED') {
    const code = await exitP;
    throw new Error(`agent exited (${code}) before listening:\n${out}`);
  }
  const url = found;
  const api = async (method: string, p: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse> => {
    const h: Record<string, string> = { authorization: `Bearer ${token}`, ...headers };
    if (body !== undefined && !h['content-type']) h['content-type'] = 'application/json';
    const res = await fetch(`${url}${p}`, { method, headers: h, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
    const text = await res.text();
    let json: unknown;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: res.status, headers: res.headers, text, json };
  };
  const handle: AgentHandle = {
    url, port: Number(new URL(url).port), token, tokenFile, dataDir, proc, pid: proc.pid!,
    output: () => out,
    api,
    async submit(spec) {
      const r = await api('POST', '/v1/jobs', spec);
      if (r.status !== 201) throw new Error(`submit answered ${r.status}: ${r.text}`);
      return r.json.id as string;
    },
    async job(id) {
      const r = await api('GET', `/v1/jobs/${id}`);
      if (r.status !== 200) throw new Error(`GET job answered ${r.status}: ${r.text}`);
      return r.json;
    },
    async waitJob(id, states = TERMINAL, timeoutMs = 20_000) {
      return waitFor(`job ${id} in ${states.join('|')}`, async () => {
        const j = await handle.job(id);
        return states.includes(j.state) ? j : undefined;
      }, timeoutMs);
    },
    exited: () => exitP,
    async kill(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      const code = await exitP;
      started.delete(handle);
      return code;
    },
  };
  started.add(handle);
  return handle;
}

/** Stops every agent this test file started (SIGTERM: graceful; their jobs get SIGTERM too). */
export async function stopAllAgents(): Promise<void> {
  await Promise.all([...started].map((a) => a.kill('SIGTERM')));
  for (const dir of tmpDirs) {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(`${dir}.token`, { force: true });
  }
  tmpDirs.clear();
}

export function writeExecutable(file: string, text: string): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text, { mode: 0o755 });
  return file;
}

/** Whether a process runs (a zombie waiting for a parent that never reaps it counts as ended). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
