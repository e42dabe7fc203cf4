/**
 * The Job pod's entrypoint wrapper, run for real as local processes: exit classes (OOM from the
 * job's output and from the cgroup's oom_kill counter), SIGTERM with a checkpoint saved to and
 * restored from the artifact store (file://), the shard index, and the termination log.
 */
import { EventEmitter } from 'node:events';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { k8sWrapMain } from '../../src/runtime-agent/k8s/main';
import { runWrapped } from '../../src/runtime-agent/k8s/wrapper';

let dir: string;
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'mlinfra-wrap-')); });
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const sink = () => { const s = new PassThrough(); let text = ''; s.on('data', (c) => { text += c; }); return { s, text: () => text }; };
const wrap = (argv: string[], env: NodeJS.ProcessEnv = {}, extra: Partial<Parameters<typeof runWrapped>[0]> = {}) => {
  const out = sink();
  const err = sink();
  const terminationLog = join(dir, 'termination-log');
  const p = runWrapped({ argv, env: { PATH: '/usr/bin:/bin', ...env }, terminationLog, cgroupDir: join(dir, 'cgroup'), stdout: out.s, stderr: err.s, ...extra });
  return { p, out, err, termination: () => JSON.parse(readFileSync(terminationLog, 'utf8')) };
};

test('success: exit 0, output passed through, termination log says succeeded', async () => {
  const w = wrap(['sh', '-c', 'echo hello; echo warn >&2']);
  const r = await w.p;
  expect(r).toMatchObject({ exitCode: 0, failure: null });
  expect(w.out.text()).toBe('hello\n');
  expect(w.err.text()).toBe('warn\n');
  expect(w.termination()).toEqual({ class: null, reason: 'succeeded' });
});

test('a CUDA out-of-memory exit is classed oom, with the line, in the termination log the gateway reads', async () => {
  const w = wrap(['sh', '-c', 'echo "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB" >&2; exit 1']);
  const r = await w.p;
  expect(r.exitCode).toBe(1);
  expect(r.failure).toEqual({ class: 'oom', reason: 'out of memory: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB' });
  expect(w.termination()).toEqual(r.failure);
});

test('output still in the pipes when the process exits is read before the exit is classed', async () => {
  // the writer outlives the exit by a little (a worker flushing after its launcher): the pipe has not ended yet
  const w = wrap(['sh', '-c', '(sleep 0.3; echo "CUDA out of memory. Tried to allocate 4.00 GiB" >&2) & exit 1']);
  const r = await w.p;
  expect(r.failure?.class).toBe('oom');
  expect(w.err.text()).toBe('CUDA out of memory. Tried to allocate 4.00 GiB\n');
});

test('a grandchild that keeps the pipes open does not hold the result past the drain bound', async () => {
  const t0 = Date.now();
  const w = wrap(['sh', '-c', 'sleep 6 & exit 2']);
  const r = await w.p;
  expect(r.failure).toEqual({ class: 'exit', reason: 'exited with code 2' });
  expect(Date.now() - t0).toBeLessThan(5_000);
});

test('a kernel OOM kill (the cgroup\'s oom_kill counter went up) is classed oom', async () => {
  const cg = join(dir, 'cgroup');
  mkdirSync(cg);
  writeFileSync(join(cg, 'memory.events'), 'low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n');
  // The child plays the kernel: bumps the counter, then dies by SIGKILL.
  const w = wrap(['sh', '-c', `printf 'oom 2\\noom_kill 1\\n' > ${cg}/memory.events; kill -9 $$`]);
  const r = await w.p;
  expect(r.exitCode).toBe(137);
  expect(r.failure?.class).toBe('oom');
  expect(r.failure?.reason).toMatch(/cgroup oom_kill counter increased/);
});

test('a plain failure is classed exit with the code', async () => {
  const r = await wrap(['sh', '-c', 'exit 3']).p;
  expect(r).toMatchObject({ exitCode: 3, failure: { class: 'exit', reason: 'exited with code 3' } });
});

test('a command that does not exist: exit 127 and a reason naming it', async () => {
  const r = await wrap(['/nonexistent/train']).p;
  expect(r.exitCode).toBe(127);
  expect(r.failure?.reason).toMatch(/could not start the command: .*ENOENT/);
});

test('SIGTERM is passed to the job, which saves a checkpoint; the next attempt restores it', async () => {
  const store = `file://${join(dir, 'store', 'ckpt')}`;
  const signals = new EventEmitter();
  const script = [
    'if [ -f "$MLINFRA_CHECKPOINT_DIR/step" ]; then echo "resumed at $(cat "$MLINFRA_CHECKPOINT_DIR/step")"; exit 0; fi',
    'trap \'echo 41 > "$MLINFRA_CHECKPOINT_DIR/step"; exit 0\' TERM',
    'echo started',
    'while :; do sleep 0.05; done',
  ].join('\n');
  const first = wrap(['sh', '-c', script], { MLINFRA_CHECKPOINT_URI: store }, { signals, graceMs: 5000 });
  for (let i = 0; i < 200 && !first.out.text().includes('started'); i++) await new Promise((r) => setTimeout(r, 25));
  signals.emit('SIGTERM');
  const r1 = await first.p;
  expect(r1.failure?.class).toBe('preempted');
  expect(r1.checkpointFiles).toEqual({ restored: 0, saved: 1 });
  expect(readFileSync(join(dir, 'store', 'ckpt', 'step'), 'utf8')).toBe('41\n');

  const second = wrap(['sh', '-c', script], { MLINFRA_CHECKPOINT_URI: store });
  const r2 = await second.p;
  expect(r2).toMatchObject({ exitCode: 0, failure: null, checkpointFiles: { restored: 1 } });
  expect(second.out.text()).toBe('resumed at 41\n');
});

test('a job that ignores SIGTERM is killed after the grace period', async () => {
  const signals = new EventEmitter();
  const w = wrap(['sh', '-c', 'trap "" TERM; echo up; while :; do sleep 0.05; done'], {}, { signals, graceMs: 300 });
  for (let i = 0; i < 200 && !w.out.text().includes('up'); i++) await new Promise((r) => setTimeout(r, 25));
  const t0 = Date.now();
  signals.emit('SIGTERM');
  const r = await w.p;
  expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
  expect(r.exitCode).toBe(137);
  expect(r.failure?.class).toBe('preempted');
});

test('an Indexed Job\'s completion index is the shard (and the node rank in a JobSet)', async () => {
  const w = wrap(['sh', '-c', 'echo "$MLINFRA_SHARD_INDEX $MLINFRA_NODE_RANK"'], { JOB_COMPLETION_INDEX: '3', MLINFRA_NNODES: '4' });
  await w.p;
  expect(w.out.text()).toBe('3 3\n');
  const single = wrap(['sh', '-c', 'echo "[$MLINFRA_SHARD_INDEX][$MLINFRA_NODE_RANK]"'], { JOB_COMPLETION_INDEX: '2' });
  await single.p;
  expect(single.out.text()).toBe('[2][]\n');
});

test('a real out-of-memory: Python under a 300 MB address-space limit asks for 1 GiB', async () => {
  const w = wrap(['sh', '-c', 'ulimit -v 300000; exec python3 -c "x = bytearray(1 << 30)"']);
  const r = await w.p;
  expect(r.exitCode).toBe(1);
  expect(w.err.text()).toMatch(/^MemoryError/m);
  expect(r.failure).toEqual({ class: 'oom', reason: 'out of memory: MemoryError' });
});

test('k8sWrapMain: the command as given (its own -- kept), the exit code returned', async () => {
  const log = join(dir, 'main-termination-log');
  process.env.MLINFRA_TERMINATION_LOG = log;
  try {
    const code = await k8sWrapMain(['sh', '-c', 'test "$1" = "--" && exit 4', 'sh', '--']);
    expect(code).toBe(4);
    expect(JSON.parse(readFileSync(log, 'utf8'))).toEqual({ class: 'exit', reason: 'exited with code 4' });
  } finally {
    delete process.env.MLINFRA_TERMINATION_LOG;
  }
});

test('an escalated pipeline step: the run directory is brought from MLINFRA_RUN_DIR_URI before the command runs', async () => {
  const store = join(dir, 'store', 'runs', 'r1');
  mkdirSync(join(store, 'data'), { recursive: true });
  writeFileSync(join(store, 'data', 'train.csv'), 'x,y\n1,0\n');
  writeFileSync(join(store, 'metrics.json'), '{"rows":1}');
  const runDir = join(dir, 'pod', 'run');
  const w = wrap(['sh', '-c', 'cat "$MLINFRA_RUN_DIR/data/train.csv" "$MLINFRA_RUN_DIR/metrics.json"'], { MLINFRA_RUN_DIR_URI: `file://${store}/`, MLINFRA_RUN_DIR: runDir });
  const r = await w.p;
  expect(r).toMatchObject({ exitCode: 0, runDirFiles: 2 });
  expect(w.out.text()).toBe('x,y\n1,0\n{"rows":1}');
  // Without the URI nothing is fetched (a step on the runner's own cluster shares its directory).
  const plain = await wrap(['true'], { MLINFRA_RUN_DIR: join(dir, 'other') }).p;
  expect(plain.runDirFiles).toBe(0);
});

describe('a pipeline step on Kubernetes sends its files back (MLINFRA_STEP_OUTPUT_URI)', () => {
  const setup = () => {
    const store = join(dir, 'store', 'runs', 'r1');
    mkdirSync(join(store, 'data'), { recursive: true });
    writeFileSync(join(store, 'data', 'train.csv'), 'x,y\n1,0\n');
    writeFileSync(join(store, 'metrics.json'), '{"rows":1}');
    const out = join(dir, 'store', 'step-outputs', 'r1', 'train');
    return { env: { MLINFRA_RUN_DIR_URI: `file://${store}/`, MLINFRA_RUN_DIR: join(dir, 'pod', 'run'), MLINFRA_STEP_OUTPUT_URI: `file://${out}/` }, out };
  };
  const files = (root: string): string[] => {
    try {
      return (readdirSync(root, { recursive: true }) as string[]).filter((f) => !readdirSafe(join(root, f))).sort();
    } catch { return []; }
  };
  const readdirSafe = (p: string): boolean => { try { readdirSync(p); return true; } catch { return false; } };

  test('only the files it created or changed, not those it restored unchanged', async () => {
    const { env, out } = setup();
    const r = await wrap(['sh', '-c', 'mkdir -p "$MLINFRA_RUN_DIR/model" && echo w > "$MLINFRA_RUN_DIR/model/m.pt" && echo \'{"rows":1,"auc":0.9}\' > "$MLINFRA_RUN_DIR/metrics.json"'], env).p;
    expect(r).toMatchObject({ exitCode: 0, runDirFiles: 2, outputFiles: 2 });
    expect(files(out)).toEqual(['metrics.json', 'model/m.pt']);
    expect(readFileSync(join(out, 'model', 'm.pt'), 'utf8')).toBe('w\n');
  });

  test('nothing when the step fails: a failed attempt\'s partial files never reach the next steps', async () => {
    const { env, out } = setup();
    const r = await wrap(['sh', '-c', 'echo half > "$MLINFRA_RUN_DIR/partial.txt"; exit 2'], env).p;
    expect(r).toMatchObject({ exitCode: 2, outputFiles: 0 });
    expect(files(out)).toEqual([]);
  });

  test('an upload that fails fails the step, saying where', async () => {
    const { env } = setup();
    // A file where the output prefix's directory must be: the file store cannot create it.
    writeFileSync(join(dir, 'blocked'), 'x');
    const w = wrap(['sh', '-c', 'echo new > "$MLINFRA_RUN_DIR/new.txt"'], { ...env, MLINFRA_STEP_OUTPUT_URI: `file://${join(dir, 'blocked')}/out/` });
    const r = await w.p;
    expect(r.exitCode).toBe(1);
    expect(r.failure?.reason).toMatch(/^the step succeeded but its run-directory files could not be uploaded to file:\/\/.*blocked\/out\/: /);
    expect(w.termination()).toEqual({ class: 'exit', reason: r.failure?.reason });
  });
});

describe('a JobSet rank: the multi-node contract of contracts/pipeline-spec.ts, as on VMs', () => {
  /** A stand-in `python3` on PATH that prints how it was started. */
  const fakePython = () => {
    mkdirSync(join(dir, 'bin'));
    writeFileSync(join(dir, 'bin', 'python3'), '#!/bin/sh\necho "ARGV $*"\nenv | grep -E "^(MLINFRA_NODE_RANK|MLINFRA_GANG_ATTEMPT|MASTER_ADDR)=" | sort\n', { mode: 0o755 });
    return `${join(dir, 'bin')}:/usr/bin:/bin`;
  };
  const rankEnv = (path: string) => ({
    PATH: path, MLINFRA_NNODES: '2', JOB_COMPLETION_INDEX: '1', MLINFRA_GPUS_PER_NODE: '0', MLINFRA_RDZV_ENDPOINT: 'j1-node-0-0.j1:29500',
    MASTER_ADDR: 'j1-node-0-0.j1', MASTER_PORT: '29500', MLINFRA_GANG_ID: 'j1', MLINFRA_JOBSET_RESTART_ATTEMPT: '2',
  });

  test('a python script runs under torchrun with the image\'s python: c10d at rank 0, one process per node on CPU, the gang attempt in the id', async () => {
    const w = wrap(['python3', 'train.py', '--lr', '0.1'], rankEnv(fakePython()));
    expect((await w.p).exitCode).toBe(0);
    expect(w.out.text().split('\n')).toEqual([
      'ARGV -m torch.distributed.run --nnodes 2 --nproc_per_node 1 --rdzv_backend c10d --rdzv_endpoint j1-node-0-0.j1:29500 --rdzv_id j1-3'
        + ' --rdzv_conf is_host=false --max_restarts 0 --redirects 9:0 --tee 9:0 train.py --lr 0.1',
      // JobSet's restart attempt 2 is the gang's third attempt; the completion index is the node rank.
      'MASTER_ADDR=j1-node-0-0.j1', 'MLINFRA_GANG_ATTEMPT=3', 'MLINFRA_NODE_RANK=1', '',
    ]);
  });

  test('any other command (its own torchrun, a launcher) runs as is, with the same env', async () => {
    const path = fakePython();
    writeFileSync(join(dir, 'bin', 'torchrun'), '#!/bin/sh\necho "torchrun $*"\necho "rank $MLINFRA_NODE_RANK of $MLINFRA_NNODES attempt $MLINFRA_GANG_ATTEMPT"\n', { mode: 0o755 });
    const w = wrap(['torchrun', 'train.py'], rankEnv(path));
    expect((await w.p).exitCode).toBe(0);
    expect(w.out.text()).toBe('torchrun train.py\nrank 1 of 2 attempt 3\n');
  });
});
