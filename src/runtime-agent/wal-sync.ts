import * as fs from 'node:fs';

/**
 * Group commit for the journal's write-ahead log. Hot transactions (submits, run and job ends) commit
 * with `synchronous = NORMAL`: the commit is in the WAL in the page cache, which survives a kill -9
 * of the agent but not a power loss. `sync()` then makes it durable with an fdatasync of the WAL on
 * libuv's thread pool, off the event loop: what SQLite's `synchronous = FULL` does after each commit
 * (https://www.sqlite.org/pragma.html#pragma_synchronous, https://www.sqlite.org/wal.html), but every
 * commit made while one fdatasync runs shares the next one, and the agent keeps serving meanwhile.
 * Callers report a write (a 201, a job's end) only once its sync resolved.
 */
export class WalSync {
  private fd: number | null = null;
  private ino = -1;
  /** Waiters of the fdatasync running now. */
  private inFlight: Array<{ resolve(): void; reject(e: Error): void }> | null = null;
  /** Waiters that committed after it started: they need the next one. */
  private next: Array<{ resolve(): void; reject(e: Error): void }> = [];
  private closed = false;
  /** fdatasync calls made (tests and the bench read it: commits per sync). */
  syncs = 0;

  constructor(private readonly walFile: string) {}

  /** Resolves once everything committed before the call is on disk; rejects with the fdatasync's error. */
  sync(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.closed) {
        reject(new Error('the journal is closed'));
        return;
      }
      this.next.push({ resolve, reject });
      if (!this.inFlight) this.start();
    });
  }

  private start(): void {
    const waiters = this.next;
    this.next = [];
    this.inFlight = waiters;
    let fd: number;
    try {
      fd = this.open();
    } catch (e) {
      this.done(waiters, e as Error);
      return;
    }
    this.syncs++;
    fs.fdatasync(fd, (err) => this.done(waiters, err));
  }

  private done(waiters: Array<{ resolve(): void; reject(e: Error): void }>, err: Error | null): void {
    this.inFlight = null;
    for (const w of waiters) {
      if (err) w.reject(err);
      else w.resolve();
    }
    if (this.closed) this.closeFd();
    else if (this.next.length > 0) this.start();
  }

  /** The WAL's fd, reopened when SQLite replaced the file (only a journal_mode change or the last close do). */
  private open(): number {
    const st = fs.statSync(this.walFile);
    if (this.fd !== null && st.ino === this.ino) return this.fd;
    this.closeFd();
    // read-only is enough: fdatasync flushes the file's pages whichever fd names it
    this.fd = fs.openSync(this.walFile, 'r');
    this.ino = fs.fstatSync(this.fd).ino;
    return this.fd;
  }

  private closeFd(): void {
    if (this.fd === null) return;
    try {
      fs.closeSync(this.fd);
    } catch {
      // already unusable
    }
    this.fd = null;
    this.ino = -1;
  }

  /**
   * Before the journal closes: waiters not yet synced get one last fdatasync, done here (their
   * commits are durable when this returns); later syncs reject. One in flight completes on its own.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const waiters = this.next.splice(0);
    let err: Error | null = null;
    if (waiters.length > 0) {
      try {
        this.syncs++;
        fs.fdatasyncSync(this.open());
      } catch (e) {
        err = e as Error;
      }
    }
    for (const w of waiters) {
      if (err) w.reject(err);
      else w.resolve();
    }
    if (!this.inFlight) this.closeFd();
  }
}
