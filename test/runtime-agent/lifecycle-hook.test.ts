import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import pino from 'pino';
import { AwsGroupHost } from '../../src/runtime-agent/cluster/aws-group';
import { createAutoScalingCalls } from '../../src/runtime-agent/cluster/autoscaling-query';
import { fakeAsgImds, fakeAutoScaling } from '../support/fake-autoscaling';
import { BUNDLE, requireBundle, sleep, startAgent, stopAllAgents, tmpDir, waitFor } from './helpers';

afterAll(stopAllAgents);

const CREDS = { AWS_ACCESS_KEY_ID: 'AKIDLIFECYCLETEST', AWS_SECRET_ACCESS_KEY: 'secret-for-the-fake', AWS_SESSION_TOKEN: '', AWS_PROFILE: '' };
const INSTANCE = 'i-0123456789abcdef0';

describe('serve --lifecycle-hook (AWS scale-in protection and termination drain)', () => {
  test('protection is cleared when idle (before idle stop), set on the first job, and a Terminated state drains then completes the action once', async () => {
    const md = await fakeAsgImds({ instanceId: INSTANCE, region: 'eu-west-1', group: 'mlx-gpu' });
    const asg = await fakeAutoScaling();
    const dir = tmpDir();
    try {
      const agent = await startAgent({
        args: ['--lifecycle-hook', 'mlx-gpu-drain', '--aws-imds-url', md.url, '--preemption-poll-seconds', '0.1', '--grace-seconds', '2',
          '--idle-stop-minutes', '0.05', '--stop-command', `date +%s%3N >> ${dir}/stopped; exit 1`],
        env: { ...CREDS, AWS_REGION: '', AWS_ENDPOINT_URL_AUTO_SCALING: asg.url },
      });
      const protection = () => asg.calls.filter((c) => c.params.Action === 'SetInstanceProtection');
      // idle from the start: half the 3 s idle window later the host gives up its protection, before the stop command
      await waitFor('protection cleared', () => protection().length === 1, 10_000);
      expect(protection()[0]).toMatchObject({
        scope: 'eu-west-1/autoscaling',
        params: { AutoScalingGroupName: 'mlx-gpu', 'InstanceIds.member.1': INSTANCE, ProtectedFromScaleIn: 'false', Version: '2011-01-01' },
      });
      // the shell creates the file before `date` writes to it: wait for a whole line
      await waitFor('idle stop ran', () => fs.existsSync(`${dir}/stopped`) && fs.readFileSync(`${dir}/stopped`, 'utf8').includes('\n'), 10_000);
      const firstStop = Number(fs.readFileSync(`${dir}/stopped`, 'utf8').split('\n')[0]);
      expect(protection()[0].at).toBeLessThan(firstStop);

      const job = await agent.submit({ argv: ['sh', '-c', `trap 'echo saved > $MLINFRA_CHECKPOINT_DIR/ckpt; exit 0' TERM; sleep 30 & wait`] });
      await agent.waitJob(job, ['running']);
      await waitFor('protection set again', () => protection().length === 2, 10_000);
      expect(protection()[1].params.ProtectedFromScaleIn).toBe('true');
      await sleep(500);
      expect(protection()).toHaveLength(2); // one call per state change, not per poll

      md.setState('Terminated');
      const done = await agent.waitJob(job, ['interrupted'], 10_000);
      expect(done.failure.class).toBe('preempted');
      const ckpt = path.join(agent.dataDir, 'checkpoints', job, 'ckpt');
      expect(fs.readFileSync(ckpt, 'utf8')).toBe('saved\n');
      const complete = () => asg.calls.filter((c) => c.params.Action === 'CompleteLifecycleAction');
      await waitFor('lifecycle action completed', () => complete().length === 1, 15_000);
      expect(complete()[0].params).toMatchObject({
        AutoScalingGroupName: 'mlx-gpu', LifecycleHookName: 'mlx-gpu-drain', InstanceId: INSTANCE, LifecycleActionResult: 'CONTINUE',
      });
      // completed only after the job had stopped and saved its checkpoint
      expect(complete()[0].at).toBeGreaterThanOrEqual(Math.floor(fs.statSync(ckpt).mtimeMs));
      const refused = await agent.api('POST', '/v1/jobs', { argv: ['true'] });
      expect(refused.status).toBe(409);
      await sleep(1000);
      expect(complete()).toHaveLength(1);
      expect(protection()).toHaveLength(2); // a terminating host no longer touches protection
      await agent.kill('SIGTERM');
    } finally {
      await md.close();
      await asg.close();
    }
  }, 40_000);

  test('without instance metadata tags the group comes from --asg-name; a refused CompleteLifecycleAction is retried', async () => {
    const md = await fakeAsgImds({ instanceId: INSTANCE, region: 'us-west-2' });
    const asg = await fakeAutoScaling();
    const saved = { ...process.env };
    Object.assign(process.env, CREDS, { AWS_REGION: '', AWS_ENDPOINT_URL_AUTO_SCALING: asg.url });
    let busy = true;
    let drained = 0;
    const host = new AwsGroupHost({
      hook: 'h1', groupName: 'named-group', imdsUrl: md.url, pollSeconds: 0.05, clearAfterMs: 100, logger: pino({ level: 'silent' }),
      isBusy: () => busy, onTerminating: async () => { drained++; },
      calls: (region) => createAutoScalingCalls(region),
    });
    try {
      host.start();
      // busy at start (an agent restarted under running jobs): protection is asserted once, not per poll
      await waitFor('protected', () => asg.calls.length === 1, 5000);
      await sleep(300);
      expect(asg.calls).toHaveLength(1);
      expect(asg.calls[0]).toMatchObject({ scope: 'us-west-2/autoscaling', params: { AutoScalingGroupName: 'named-group', ProtectedFromScaleIn: 'true' } });
      busy = false;
      await waitFor('cleared', () => asg.calls.length === 2, 5000);
      expect(asg.calls[1].params.ProtectedFromScaleIn).toBe('false');
      asg.failNext('ResourceContention');
      md.setState('Terminated');
      await waitFor('drain started', () => host.completed !== undefined, 5000);
      await host.completed;
      expect(drained).toBe(1);
      const complete = asg.calls.filter((c) => c.params.Action === 'CompleteLifecycleAction');
      expect(complete).toHaveLength(1);
      expect(complete[0].params).toMatchObject({ AutoScalingGroupName: 'named-group', LifecycleHookName: 'h1', InstanceId: INSTANCE });
    } finally {
      host.stop();
      process.env = saved;
      await md.close();
      await asg.close();
    }
  }, 20_000);

  test.each([
    [['--lifecycle-hook', 'bad name!'], '--lifecycle-hook'],
    [['--asg-name', 'g'], '--asg-name'],
    [['--lifecycle-hook', 'h', '--preemption', 'gcp'], 'AWS hosts only'],
  ])('serve %j is refused with exit 2 naming the option', (args, says) => {
    requireBundle();
    const r = spawnSync(process.execPath, [BUNDLE, 'serve', '--port', '0', '--data-dir', tmpDir(), ...args], {
      env: { ...process.env, MLINFRA_AGENT_TOKEN: 'test-token-0123456789' }, encoding: 'utf8', timeout: 15_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(says);
  });
});
