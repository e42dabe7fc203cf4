/**
 * The run launcher (launcher.ts): shims start from one long-lived /bin/sh, not by forking the agent.
 * What matters: the job gets exactly its argv, working directory and environment through the command
 * script (quotes, `$`, newlines, UTF-8 included); the shim is the launcher's child, in its own session;
 * a host without `setsid` falls back to spawning; the launcher ends with the agent.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RunLauncher } from '../../src/runtime-agent/launcher';
import { commandScript, shellQuote } from '../../src/runtime-agent/supervisor';
import { pidAlive, startAgent, stopAllAgents, tmpDir, waitFor } from './helpers';

afterAll(stopAllAgents);

/** Field `n` (1-based, after the command name) of /proc/PID/stat. */
function statField(pid: number, n: number): string {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[n - 3];
}
const comm = (pid: number): string => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, 4).join(' ');

const AWKWARD = ["it's", '$HOME `id` $(id)', 'two\nlines', 'back\\slash "quoted"', '日本語テキスト', '', '-n', '*'];

describe('commandScript', () => {
  test('what /bin/sh runs from it is exactly the argv, cwd and environment given', () => {
    const dir = tmpDir();
    const env: NodeJS.ProcessEnv = { ...process.env, A_QUOTE: "it's", A_DOLLAR: '$HOME `id`', A_NL: 'x\ny', A_EMPTY: '' };
    delete env.LANG;
    const from = { ...process.env };
    const script = commandScript(dir, ['/bin/sh', '-c', 'pwd; printf "[%s]\\n" "$@"; env', 'arg0', ...AWKWARD], '/tmp', env, from)!;
    fs.writeFileSync(path.join(dir, 'c'), script);
    const r = spawnSync('/bin/sh', ['-c', `. ${shellQuote(path.join(dir, 'c'))}`], { env: from, encoding: 'utf8' });
    expect(r.status).toBe(0);
    const [cwd, ...rest] = r.stdout.split('\n');
    expect(cwd).toBe('/tmp');
    expect(rest.join('\n')).toContain(AWKWARD.map((a) => `[${a}]`).join('\n'));
    const printed = rest.join('\n');
    for (const [k, v] of Object.entries({ A_QUOTE: "it's", A_DOLLAR: '$HOME `id`', A_NL: 'x\ny', A_EMPTY: '' })) expect(printed).toContain(`\n${k}=${v}\n`);
    if (process.env.LANG !== undefined) expect(printed).not.toMatch(/^LANG=/m); // removed against the launcher's environment
  });

  test('a missing program marks the run (status N), and names that cannot be shell variables are refused (spawned instead)', () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'c'), commandScript(dir, ['/nonexistent/program'], undefined, {}, {})!);
    const r = spawnSync('/bin/sh', ['-c', `. ${shellQuote(path.join(dir, 'c'))}`], { encoding: 'utf8' });
    expect(r.status).toBe(127);
    expect(fs.existsSync(path.join(dir, 'n'))).toBe(true);
    expect(commandScript(dir, ['true'], undefined, { 'NOT-A-NAME': 'x' }, {})).toBeNull();
    expect(commandScript(dir, ['true'], undefined, { OK: 'a\0b' }, {})).toBeNull();
  });
});

describe('RunLauncher', () => {
  test('without setsid on the PATH it says so and starts nothing', async () => {
    const l = new RunLauncher({ PATH: '/nonexistent' });
    const dir = tmpDir();
    const r = await l.launch(dir, 'm.1.t.abc');
    expect(r).toEqual({ unavailable: 'setsid is not installed' });
    expect(l.usable).toBe(false);
    expect(fs.existsSync(path.join(dir, 'p'))).toBe(false);
  });
});

describe('jobs through the launcher', () => {
  test('a job sees its exact argv and env; its shim is the launcher\'s child in its own session; the launcher ends with the agent', async () => {
    const dir = tmpDir();
    const agent = await startAgent();
    const id = await agent.submit({
      argv: ['/bin/sh', '-c', `echo $$ > ${dir}/pid; printf '[%s]\\n' "$@"; printf '<%s>\\n' "$WEIRD"; while [ ! -e ${dir}/go ]; do sleep 0.05; done`, 'arg0', ...AWKWARD],
      env: { WEIRD: "a'b\n$c \\ 日本" },
      cwd: dir,
    });
    const jobPid = Number(await waitFor('job pid', () => fs.existsSync(`${dir}/pid`) && fs.readFileSync(`${dir}/pid`, 'utf8').trim()));
    const shim = Number(statField(jobPid, 4)); // the job's parent: the shim
    expect(comm(shim)).toMatch(/^\/bin\/sh -c .*\n?/s);
    expect(fs.readFileSync(`/proc/${shim}/cmdline`, 'utf8').split('\0')).toContain('mlinfra-run');
    expect(statField(shim, 6)).toBe(String(shim)); // session leader
    expect(statField(jobPid, 5)).toBe(String(shim)); // the job is in the shim's group
    const launcher = Number(statField(shim, 4));
    expect(launcher).not.toBe(agent.pid);
    expect(fs.readFileSync(`/proc/${launcher}/cmdline`, 'utf8').split('\0')).toContain('mlinfra-launcher');
    expect(Number(statField(launcher, 4))).toBe(agent.pid);
    // the agent's token never reaches the launcher's (and so no job's) environment
    expect(fs.readFileSync(`/proc/${launcher}/environ`, 'utf8')).not.toContain(agent.token);
    fs.writeFileSync(`${dir}/go`, '');
    const job = await agent.waitJob(id);
    expect(job).toMatchObject({ state: 'succeeded', exitCode: 0 });
    const log = (await agent.api('GET', `/v1/jobs/${id}/logs`)).text;
    expect(log).toBe(`${AWKWARD.map((a) => `[${a}]\n`).join('')}<a'b\n$c \\ 日本>\n`);
    await agent.kill('SIGTERM');
    await waitFor('launcher gone', () => !pidAlive(launcher), 5000);
  }, 30_000);
});
