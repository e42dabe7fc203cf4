import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';

interface JobLogEvents {
  /** More bytes are on disk (followers read them from the file, at their own pace). */
  data: [];
  end: [];
}

/** Where a reader stands: the generation (rotations so far) and the bytes of the current file. */
interface LogPosition {
  readonly gen: number;
  readonly size: number;
  readonly ended: boolean;
}

/**
 * A job's combined stdout+stderr log: one file `<id>.log`, rotated to `<id>.log.1` when it would
 * grow past `maxBytes` (so at most about 2 x maxBytes per job are kept). Followers are told when
 * more is on disk and read it from the file, so a slow follower costs no memory.
 */
export class JobLog extends EventEmitter<JobLogEvents> implements LogPosition {
  private fd: number | null = null;
  private bytes: number;
  private generation = 0;
  private done = false;
  /** The first write error (disk full, read-only): later output is dropped. */
  private failed: Error | null = null;

  constructor(readonly file: string, private readonly maxBytes: number) {
    super();
    this.setMaxListeners(0);
    try {
      this.bytes = fs.statSync(file).size;
    } catch {
      this.bytes = 0;
    }
  }

  get size(): number {
    return this.bytes;
  }

  get gen(): number {
    return this.generation;
  }

  get ended(): boolean {
    return this.done;
  }

  get error(): Error | null {
    return this.failed;
  }

  /** Appends a chunk. Returns the write error (the first one, every time after it) instead of throwing. */
  write(chunk: Buffer): Error | null {
    if (this.done || this.failed) return this.failed;
    let rest = chunk;
    try {
      while (rest.length > 0) {
        if (this.bytes >= this.maxBytes) this.rotate();
        const part = rest.subarray(0, this.maxBytes - this.bytes);
        if (this.fd === null) this.fd = fs.openSync(this.file, 'a');
        const n = fs.writeSync(this.fd, part);
        this.bytes += n;
        rest = rest.subarray(n);
      }
    } catch (e) {
      this.failed = e as Error;
      this.closeFd();
    }
    this.emit('data');
    return this.failed;
  }

  private rotate(): void {
    this.closeFd();
    fs.renameSync(this.file, `${this.file}.1`);
    this.bytes = 0;
    this.generation++;
  }

  private closeFd(): void {
    if (this.fd === null) return;
    try {
      fs.closeSync(this.fd);
    } catch {
      // already unusable
    }
    this.fd = null;
  }

  /** The job reached a terminal state: close the file and end every follower (after what is on disk). */
  end(): void {
    if (this.done) return;
    this.done = true;
    this.closeFd();
    this.emit('end');
    this.removeAllListeners();
  }
}

/** Per-job log files under `<dataDir>/logs`, and the streams the logs route answers with. */
export class LogStore {
  private readonly open = new Map<string, JobLog>();
  private readonly readers = new Set<Readable>();

  constructor(private readonly dir: string, private readonly maxBytes: number) {
    fs.mkdirSync(dir, { recursive: true });
  }

  fileOf(jobId: string): string {
    return path.join(this.dir, `${jobId}.log`);
  }

  /** The live log of a job that is not finished (created on first use). */
  live(jobId: string): JobLog {
    let log = this.open.get(jobId);
    if (!log) {
      log = new JobLog(this.fileOf(jobId), this.maxBytes);
      this.open.set(jobId, log);
    }
    return log;
  }

  /** Called when a job reaches a terminal state. */
  finish(jobId: string): void {
    const log = this.open.get(jobId);
    this.open.delete(jobId);
    log?.end();
  }

  /** Ends every live log and its followers (agent shutdown: queued jobs' followers must not hold the server open). */
  finishAll(): void {
    for (const id of [...this.open.keys()]) this.finish(id);
  }

  /** Resolves when every log stream has been sent to its end (or after `ms`): shutdown then cuts what is left. */
  async drained(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.readers.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  }

  private track(r: Readable): Readable {
    this.readers.add(r);
    r.once('close', () => this.readers.delete(r));
    return r;
  }

  /** What is on disk now: the rotated generation, then the current file. */
  snapshot(jobId: string): Readable {
    const file = this.fileOf(jobId);
    let size = 0;
    try {
      size = fs.statSync(file).size;
    } catch {
      // no output yet
    }
    return this.track(readLog(file, { gen: 1, size, ended: true }, null));
  }

  /**
   * Everything so far, then live output until the job ends. Must be called in the same tick as the
   * check that the job is not terminal.
   */
  follow(jobId: string): Readable {
    return this.track(readLog(this.fileOf(jobId), this.live(jobId), this.live(jobId)));
  }
}

const READ_BYTES = 64 * 1024;

/**
 * Streams a log from disk: `<file>.1` (when present), then `<file>` up to `pos.size`, then (with an
 * emitter) more as it is written, until `pos.ended`. Reads only when the consumer asks (backpressure);
 * one open file at a time, closed on end, error or disconnect. A reader two rotations behind skips
 * to the newest generation.
 */
function readLog(file: string, pos: LogPosition, events: JobLog | null): Readable {
  let gen = fs.existsSync(`${file}.1`) ? pos.gen - 1 : pos.gen;
  let offset = 0;
  let fh: fs.promises.FileHandle | null = null;
  let fhGen = -1;
  let busy = false;
  let waiting = false;
  let gone = false;
  const closeFh = async (): Promise<void> => {
    const h = fh;
    fh = null;
    fhGen = -1;
    await h?.close().catch(() => undefined);
  };
  const wake = (): void => {
    if (waiting) {
      waiting = false;
      void pump();
    }
  };
  const detach = (): void => {
    events?.off('data', wake);
    events?.off('end', wake);
  };
  const out = new Readable({
    read() {
      void pump();
    },
    destroy(err, cb) {
      gone = true;
      detach();
      if (!busy) void closeFh();
      cb(err);
    },
  });
  events?.on('data', wake);
  events?.on('end', wake);

  async function pump(): Promise<void> {
    if (busy || gone) return;
    busy = true;
    try {
      for (;;) {
        if (gen < pos.gen - 1) {
          gen = pos.gen;
          offset = 0;
        }
        const rotated = gen < pos.gen;
        const limit = rotated ? Infinity : pos.size;
        if (offset >= limit) {
          if (pos.ended) {
            await closeFh();
            detach();
            if (!gone) out.push(null);
            return;
          }
          waiting = true;
          return;
        }
        if (fhGen !== gen) {
          await closeFh();
          try {
            fh = await fs.promises.open(rotated ? `${file}.1` : file, 'r');
            fhGen = gen;
          } catch {
            // a missing file only means there is less to send
            if (rotated) {
              gen++;
              offset = 0;
              continue;
            }
            waiting = !pos.ended;
            if (pos.ended && !gone) out.push(null);
            return;
          }
        }
        const want = Math.min(READ_BYTES, limit - offset);
        const buf = Buffer.allocUnsafe(want);
        const { bytesRead } = await fh!.read(buf, 0, want, offset);
        if (gone) return;
        if (bytesRead === 0) {
          if (rotated) {
            gen++;
            offset = 0;
            continue;
          }
          // the file is shorter than recorded (replaced): start over in the new file
          await closeFh();
          waiting = !pos.ended;
          if (pos.ended) out.push(null);
          return;
        }
        offset += bytesRead;
        if (!out.push(buf.subarray(0, bytesRead))) return;
      }
    } catch (e) {
      if (!gone) out.destroy(e as Error);
    } finally {
      busy = false;
      if (gone) void closeFh();
    }
  }
  return out;
}
