import type { Logger } from 'pino';
import type { ServeOptions } from '../options';
import { imdsGet, type PreemptionNotice } from '../preemption';
import type { AutoScalingCalls } from './autoscaling-query';

/**
 * An AWS host's part in its Auto Scaling group (serve --lifecycle-hook NAME):
 * - scale-in protection follows the work: set when the host becomes busy, cleared once it has been idle for
 *   `clearAfterMs` (before idle stop terminates it), one call per state change;
 * - the termination lifecycle hook: IMDSv2 `autoscaling/target-lifecycle-state` turning `Terminated` starts
 *   the drain (`onTerminating`, the spot-notice path), then CompleteLifecycleAction CONTINUE, once.
 * The group name comes from the instance's tag via IMDS (needs instance metadata tags enabled) unless given.
 * https://docs.aws.amazon.com/autoscaling/ec2/userguide/retrieving-target-lifecycle-state-through-imds.html
 */
export interface AwsGroupHostOptions {
  readonly hook: string;
  readonly imdsUrl: string;
  readonly pollSeconds: number;
  /** Idle this long (ms) and protection is cleared. */
  readonly clearAfterMs: number;
  /** @default - the instance's `aws:autoscaling:groupName` tag through IMDS */
  readonly groupName?: string;
  readonly isBusy: () => boolean;
  /** Stops leasing, stops jobs (checkpoints saved) and releases leases; resolves when done. */
  readonly onTerminating: () => Promise<void>;
  readonly logger: Logger;
  /** @default - the signed client in autoscaling-aws.js, for the instance's region */
  readonly calls?: (region: string) => AutoScalingCalls;
}

/** Lifecycle hook names: 1-255 of [A-Za-z0-9-_/] (API_CompleteLifecycleAction, LifecycleHookName pattern). */
export const LIFECYCLE_HOOK_PATTERN = /^[A-Za-z0-9\-_/]{1,255}$/;

export class AwsGroupHost {
  private timer: NodeJS.Timeout | undefined;
  private polling = false;
  private stopped = false;
  private terminating = false;
  /** Unknown at start: hosts launch protected, but an agent restarted on a host may find it cleared, so a busy start sets it once. */
  private protectedNow: boolean | undefined;
  private idleSince: number | null = null;
  private ident?: Promise<{ instanceId: string; group: string; calls: AutoScalingCalls }>;
  /** Settles when the lifecycle action has been completed (tests and shutdown wait on it). */
  completed: Promise<void> | undefined;

  constructor(private readonly o: AwsGroupHostOptions) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.poll(), this.o.pollSeconds * 1000);
    this.timer.unref();
    void this.poll();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  private async poll(): Promise<void> {
    if (this.stopped || this.polling) return;
    this.polling = true;
    try {
      await this.protection();
      if (!this.terminating && (await this.imds('meta-data/autoscaling/target-lifecycle-state')) === 'Terminated') {
        this.terminating = true;
        clearInterval(this.timer);
        this.o.logger.warn({ hook: this.o.hook }, 'termination lifecycle hook: draining');
        this.completed = this.drainAndComplete();
      }
    } catch (e) {
      this.o.logger.debug({ err: (e as Error).message }, 'auto scaling group check failed');
    } finally {
      this.polling = false;
    }
  }

  private async protection(): Promise<void> {
    if (this.terminating) return;
    const busy = this.o.isBusy();
    if (busy) this.idleSince = null;
    else this.idleSince ??= Date.now();
    const want = busy || Date.now() - (this.idleSince ?? 0) < this.o.clearAfterMs;
    if (want === this.protectedNow || (this.protectedNow === undefined && want && !busy)) return;
    const { instanceId, group, calls } = await this.identity();
    await calls.setInstanceProtection(group, instanceId, want);
    this.protectedNow = want;
    this.o.logger.info({ group, instanceId, protectedFromScaleIn: want }, 'scale-in protection changed');
  }

  private async drainAndComplete(): Promise<void> {
    try {
      await this.o.onTerminating();
    } catch (e) {
      this.o.logger.error({ err: (e as Error).message }, 'drain before termination failed; completing the lifecycle action anyway');
    }
    // Retried: without completion the host waits out the hook's heartbeat timeout before it goes.
    for (let attempt = 1; ; attempt++) {
      try {
        const { instanceId, group, calls } = await this.identity();
        await calls.completeLifecycleAction(group, this.o.hook, instanceId, 'CONTINUE');
        this.o.logger.info({ group, instanceId, hook: this.o.hook }, 'lifecycle action completed');
        return;
      } catch (e) {
        this.o.logger.warn({ err: (e as Error).message, attempt }, 'CompleteLifecycleAction failed');
        if (attempt >= 5 || this.stopped) return;
        await new Promise((r) => setTimeout(r, Math.min(30_000, 500 * 2 ** attempt)));
      }
    }
  }

  private identity(): Promise<{ instanceId: string; group: string; calls: AutoScalingCalls }> {
    this.ident ??= (async () => {
      const instanceId = await this.imds('meta-data/instance-id');
      const group = this.o.groupName ?? await this.imds('meta-data/tags/instance/aws:autoscaling:groupName');
      if (!instanceId || !group) throw new Error('IMDS gave no instance id or no aws:autoscaling:groupName tag (instance metadata tags disabled?)');
      const region = process.env.AWS_REGION || await this.imds('meta-data/placement/region');
      if (!region) throw new Error('IMDS gave no placement/region and AWS_REGION is not set');
      // a file of its own (autoscaling-aws.js): the credential chain is parsed only on AWS hosts with a hook
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const make = this.o.calls ?? ((r: string) => (require('./autoscaling-query') as typeof import('./autoscaling-query')).createAutoScalingCalls(r));
      return { instanceId, group, calls: make(region) };
    })();
    // a failed look-up is tried again on the next poll
    this.ident.catch(() => { this.ident = undefined; });
    return this.ident;
  }

  private async imds(path: string): Promise<string | null> {
    return (await imdsGet(this.o.imdsUrl, path))?.trim() ?? null;
  }
}

/** serve option checks for --lifecycle-hook / --asg-name (`fail` throws the ServeOptionError naming the option). */
export function checkLifecycleHook(
  o: { readonly lifecycleHook?: string; readonly asgName?: string; readonly preemption: string },
  fail: (name: string, value: unknown, allowed: string) => never,
): void {
  if (o.lifecycleHook !== undefined && !LIFECYCLE_HOOK_PATTERN.test(o.lifecycleHook)) {
    fail('--lifecycle-hook', o.lifecycleHook, 'an Auto Scaling lifecycle hook name: 1-255 of A-Z a-z 0-9 - _ /');
  }
  if (o.lifecycleHook !== undefined && o.preemption === 'gcp') fail('--lifecycle-hook', o.lifecycleHook, 'AWS hosts only (not with --preemption gcp)');
  if (o.asgName !== undefined && o.lifecycleHook === undefined) fail('--asg-name', o.asgName, 'only with --lifecycle-hook');
  // AutoScalingGroupName: 1-255 characters (API_SetInstanceProtection)
  if (o.asgName !== undefined && (o.asgName.length < 1 || o.asgName.length > 255 || /[\u0000-\u001f]/.test(o.asgName))) {
    fail('--asg-name', o.asgName, 'an Auto Scaling group name: 1-255 printable characters');
  }
}

/** Protection is cleared after this long idle when idle stop is off (an operator's scale-in can then pick the host). */
const CLEAR_IDLE_DEFAULT_MS = 10 * 60_000;

export interface LifecycleHookDeps {
  readonly scheduler: { isIdle(): boolean };
  readonly cluster?: { readonly leaseCount: number; close(): Promise<void> };
  readonly held: () => boolean;
  /** The spot-notice path: stop leasing, SIGTERM jobs (they save checkpoints), release leases. */
  readonly onNotice: (n: PreemptionNotice) => void;
  readonly logger: Logger;
}

/** Starts the AwsGroupHost for serve --lifecycle-hook (undefined without it). */
export function startLifecycleHook(o: ServeOptions, d: LifecycleHookDeps): AwsGroupHost | undefined {
  if (o.lifecycleHook === undefined) return undefined;
  const graceMs = o.graceSeconds * 1000;
  const host = new AwsGroupHost({
    hook: o.lifecycleHook, groupName: o.asgName, imdsUrl: o.awsImdsUrl, pollSeconds: o.preemptionPollSeconds, logger: d.logger,
    // half the idle window: protection is off before idle stop's terminate call runs
    clearAfterMs: o.idleStopMinutes > 0 ? o.idleStopMinutes * 60_000 / 2 : CLEAR_IDLE_DEFAULT_MS,
    isBusy: () => !d.scheduler.isIdle() || d.held() || (d.cluster?.leaseCount ?? 0) > 0,
    onTerminating: async () => {
      d.onNotice({ provider: 'aws', detail: `lifecycle hook ${o.lifecycleHook}: target-lifecycle-state Terminated` });
      // jobs get SIGTERM, SIGKILL after grace: wait for that (and a margin for the checkpoint uploads), then the releases
      const deadline = Date.now() + graceMs + 10_000;
      while (!d.scheduler.isIdle() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      await d.cluster?.close();
    },
  });
  host.start();
  return host;
}
