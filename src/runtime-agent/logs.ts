import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough, Readable } from 'node:stream';

interface JobLogEvents {
  data: [chunk: Buffer];
  end: [];
}

/**
 * A job's combined stdout+stderr log: one file `<id>.log`, rotated to `<id>.log.1` when it would
 * grow past `maxBytes` (so at most about 2 x maxBytes per job are kept). Followers get live chunks.
 */
export class JobLog extends EventEmitter<JobLogEvents> {
  private fd: number | null = null;
  private size: number;
  private ended = false;

  constructor(readonly file: string, private readonly maxBytes: number) {
    super();
    this.setMaxListeners(0);
    try {
      this.size = fs.statSync(file).size;
    } catch {
      this.size = 0;
    }
  }

  /** Bytes currently in the (unrotated) log file. */
  get currentSize(): number {
    return this.size;
  }

  write(chunk: Buffer): void {
    if (this.ended) return;
    let rest = chunk;
    while (rest.length > 0) {
      if (this.size >= this.maxBytes) this.rotate();
      const part = rest.subarray(0, this.maxBytes - this.size);
      if (this.fd === null) this.fd = fs.openSync(this.file, 'a');
      fs.writeSync(this.fd, part);
      this.size += part.length;
      rest = rest.subarray(part.length);
    }
    this.emit('data', chunk);
  }

  private rotate(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
    fs.renameSync(this.file, `${this.file}.1`);
    this.size = 0;
  }

  /** The job reached a terminal state: close the file and end every follower. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
    this.emit('end');
    this.removeAllListeners();
  }
}

/** Per-job log files under `<dataDir>/logs`, and the streams the logs route answers with. */
export class LogStore {
  private readonly open = new Map<string, JobLog>();

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

  /** What is on disk now: the rotated generation, then the current file. */
  snapshot(jobId: string): Readable {
    const file = this.fileOf(jobId);
    return Readable.from(concatFiles([`${file}.1`, file]));
  }

  /**
   * Everything so far, then live output until the job ends. Must be called in the same tick as the
   * check that the job is not terminal (single-threaded: no chunk is lost or repeated in between).
   */
  follow(jobId: string): Readable {
    const log = this.live(jobId);
    const out = new PassThrough();
    const upTo = log.currentSize;
    const pending: Buffer[] = [];
    let draining = true;
    let ended = false;
    const onData = (c: Buffer): void => {
      if (draining) pending.push(c);
      else out.write(c);
    };
    const onEnd = (): void => {
      ended = true;
      if (!draining) out.end();
    };
    log.on('data', onData);
    log.on('end', onEnd);
    out.on('close', () => {
      log.off('data', onData);
      log.off('end', onEnd);
    });
    const file = this.fileOf(jobId);
    void (async () => {
      try {
        for await (const chunk of concatFiles([`${file}.1`, file], upTo)) {
          if (!out.write(chunk)) await new Promise((r) => out.once('drain', r));
        }
      } catch {
        // a missing or rotated file only means there is less history to send
      }
      for (const c of pending) out.write(c);
      pending.length = 0;
      draining = false;
      if (ended) out.end();
    })();
    return out;
  }
}

/** Streams files one after the other; missing files are skipped. `lastLimit` caps the last file. */
async function* concatFiles(files: string[], lastLimit?: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < files.length; i++) {
    const limit = i === files.length - 1 ? lastLimit : undefined;
    if (limit === 0) continue;
    let stream: fs.ReadStream;
    try {
      await fs.promises.access(files[i]);
      stream = fs.createReadStream(files[i], limit === undefined ? {} : { start: 0, end: limit - 1 });
    } catch {
      continue;
    }
    for await (const chunk of stream) yield chunk as Buffer;
  }
}
