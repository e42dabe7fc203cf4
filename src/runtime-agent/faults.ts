import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { diskFaultOf, type DiskFault } from './db';
import { AgentError } from './errors';
import type { Journal } from './journal';

/** Why the agent cannot write now (disk full or read-only): submits are refused until it clears. */
export interface Fault {
  readonly kind: DiskFault;
  readonly message: string;
  readonly since: string;
}

/** How often journal writes held back by a disk fault are retried. */
const FAULT_RETRY_MS = 1000;
/** Free space a recovered disk must show (job output needs room too, not only the journal's reused pages). */
const PROBE_BYTES = 256 * 1024;

/** 507 (full) or 503 (read-only) naming the cause; nothing already stored is lost. */
export function faultError(f: Fault): AgentError {
  return f.kind === 'full'
    ? new AgentError(507, 'disk_full', `the agent's disk is full (${f.message}): no new jobs are accepted until space returns`, 'disk')
    : new AgentError(503, 'disk_read_only', `the agent's data directory is not writable (${f.message}): no new jobs are accepted until it is`, 'disk',
      { retryAfterSeconds: 30 });
}

export interface DiskGuardOptions {
  readonly dataDir: string;
  readonly journal: Journal;
  readonly logger: Logger;
  /** Crash recovery that a fault at start-up held back. */
  readonly recover: () => Promise<void>;
  readonly cleared: () => void;
}

/**
 * Keeps the agent up through a full or read-only disk: records the fault, holds back the journal
 * writes that failed and replays them in order once a retry finds the disk writable again.
 */
export class DiskGuard {
  private current: Fault | null = null;
  private readonly held: Array<() => void> = [];
  private recoveryHeld = false;
  private timer: NodeJS.Timeout | undefined;
  private retrying = false;

  constructor(private readonly o: DiskGuardOptions) {}

  get fault(): Fault | null {
    return this.current;
  }

  /** Whether journal writes are waiting for the disk. */
  get holding(): boolean {
    return this.held.length > 0;
  }

  /** Records a disk fault when `e` is one (returns false otherwise). */
  note(e: unknown): boolean {
    const kind = diskFaultOf(e);
    if (!kind) return false;
    if (!this.current) {
      this.current = { kind, message: (e as Error).message, since: new Date().toISOString() };
      this.o.logger.error({ fault: this.current }, 'disk fault: new jobs are refused until the disk accepts writes again');
    }
    if (!this.timer) {
      this.timer = setInterval(() => void this.retry(), FAULT_RETRY_MS);
      this.timer.unref();
    }
    return true;
  }

  /** A journal write that survives a disk fault: done now, or held and replayed (in order) when the disk recovers. */
  durable(fn: () => void): void {
    if (this.held.length > 0) {
      this.held.push(fn);
      return;
    }
    try {
      fn();
    } catch (e) {
      if (!this.note(e)) throw e;
      this.held.push(fn);
    }
  }

  holdRecovery(e: unknown): void {
    if (!this.note(e)) throw e;
    this.recoveryHeld = true;
  }

  private async retry(): Promise<void> {
    if (this.retrying) return;
    this.retrying = true;
    try {
      if (await this.tryClear()) {
        clearInterval(this.timer);
        this.timer = undefined;
        this.o.logger.info({ fault: this.current }, 'disk fault cleared: accepting jobs again');
        this.current = null;
        this.o.cleared();
      }
    } finally {
      this.retrying = false;
    }
  }

  /** Whether the data dir takes a write of PROBE_BYTES now (records a fault when it does not). */
  checkSpace(): boolean {
    try {
      this.probe();
      return true;
    } catch (e) {
      if (!this.note(e)) throw e;
      return false;
    }
  }

  private probe(): void {
    const probe = path.join(this.o.dataDir, 'logs', '.space-probe');
    try {
      fs.writeFileSync(probe, Buffer.alloc(PROBE_BYTES));
    } finally {
      fs.rmSync(probe, { force: true });
    }
  }

  private async tryClear(): Promise<boolean> {
    while (this.held.length > 0) {
      try {
        this.held[0]();
      } catch (e) {
        if (diskFaultOf(e)) return false;
        this.o.logger.error({ err: e }, 'a held journal write failed: dropped');
      }
      this.held.shift();
    }
    try {
      this.o.journal.markOpen();
      this.probe();
      if (this.recoveryHeld) {
        await this.o.recover();
        this.recoveryHeld = false;
      }
      return true;
    } catch (e) {
      if (!diskFaultOf(e)) this.o.logger.error({ err: e }, 'disk fault retry failed');
      return false;
    }
  }

  /** Stops retrying (agent shutdown). Safe twice. */
  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
