import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';

export interface AutostopOptions {
  readonly idleStopMinutes: number;
  readonly preStopCommand?: string;
  readonly stopCommand?: string;
  readonly isIdle: () => boolean;
  readonly logger: Logger;
  /** How often idleness is checked. @default 1000 ms, or less for sub-minute test settings */
  readonly checkMs?: number;
}

interface AutostopEvents {
  /** `reason`: 'idle' (this class's own timer) or what `stopNow` was given (e.g. 'dead-man'). */
  stopping: [info: { idleSeconds: number; reason: string }];
  'command:done': [info: { which: 'pre-stop' | 'stop'; exitCode: number | null }];
}

/**
 * Idle autostop: once nothing has been queued or running for `idleStopMinutes`, runs the pre-stop
 * hook, then the stop command (each with /bin/sh -c). It fires once per idle period: new work, or a
 * stop command that exits non-zero, re-arms it.
 */
export class Autostop extends EventEmitter<AutostopEvents> {
  private timer: NodeJS.Timeout | undefined;
  private idleSince: number | null = null;
  private fired = false;
  private running = false;
  private stopped = false;

  constructor(private readonly o: AutostopOptions) {
    super();
  }

  start(): void {
    if (this.o.idleStopMinutes <= 0 || this.timer) return;
    const idleMs = this.o.idleStopMinutes * 60_000;
    const every = this.o.checkMs ?? Math.max(50, Math.min(1000, idleMs / 10));
    this.timer = setInterval(() => this.check(idleMs), every);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private check(idleMs: number): void {
    if (!this.o.isIdle()) {
      this.idleSince = null;
      this.fired = false;
      return;
    }
    this.idleSince ??= Date.now();
    if (this.fired || this.running || Date.now() - this.idleSince < idleMs) return;
    this.fired = true;
    void this.fire((Date.now() - this.idleSince) / 1000, 'idle').then((exitCode) => {
      // A refused stop (group at its minimum, not this pod's turn) is tried again after another idle period.
      if (exitCode !== 0) {
        this.idleSince = Date.now();
        this.fired = false;
      }
    });
  }

  /**
   * Runs the same pre-stop hook and stop command now, for another guard (the dead-man switch), even
   * when idle autostop itself is off. Resolves with the stop command's exit code (0 when there is
   * none: the stop only logs), or null when a stop is under way or the agent is shutting down.
   */
  async stopNow(reason: string): Promise<number | null> {
    if (this.running || this.stopped) return null;
    return this.fire(this.idleSince === null ? 0 : (Date.now() - this.idleSince) / 1000, reason);
  }

  private async fire(idleSeconds: number, reason: string): Promise<number | null> {
    this.running = true;
    this.o.logger.warn({ idleSeconds, reason, stopCommand: this.o.stopCommand ?? null }, reason === 'idle' ? 'idle autostop' : `autostop: ${reason}`);
    this.emit('stopping', { idleSeconds, reason });
    try {
      if (this.o.preStopCommand) await this.sh('pre-stop', this.o.preStopCommand);
      return this.o.stopCommand ? await this.sh('stop', this.o.stopCommand) : 0;
    } finally {
      this.running = false;
    }
  }

  private sh(which: 'pre-stop' | 'stop', command: string): Promise<number | null> {
    return new Promise((resolve) => {
      const child = spawn('/bin/sh', ['-c', command], { stdio: 'ignore' });
      let settled = false;
      const done = (exitCode: number | null): void => {
        if (settled) return;
        settled = true;
        this.o.logger.info({ which, command, exitCode }, 'autostop command finished');
        this.emit('command:done', { which, exitCode });
        resolve(exitCode);
      };
      child.on('error', () => done(null));
      child.on('exit', (code) => done(code));
    });
  }
}
