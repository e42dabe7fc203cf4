import * as fs from 'node:fs';

/** How long one log line may wait on a full non-blocking stdout before it is dropped. */
const EAGAIN_TRIES = 100;
const EAGAIN_WAIT_MS = 10;

/**
 * Where `serve` writes its own log lines: stdout, synchronously (a line is out before the next step,
 * as with pino's default). When the reader is gone (EPIPE: the parent that read the agent's stdout
 * died), lines are dropped from then on instead of retried: pino's default destination retried the
 * write every 100 ms forever, so the agent never got to its SIGTERM shutdown.
 */
export function stdoutDestination(fd = 1): { write(line: string): void; readonly broken: boolean } {
  let broken = false;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  return {
    get broken() {
      return broken;
    },
    write(line: string): void {
      if (broken) return;
      let buf = Buffer.from(line);
      let tries = 0;
      while (buf.length > 0) {
        try {
          buf = buf.subarray(fs.writeSync(fd, buf));
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'EAGAIN' && tries++ < EAGAIN_TRIES) {
            Atomics.wait(pause, 0, 0, EAGAIN_WAIT_MS);
            continue;
          }
          // EPIPE, EBADF (stdout closed): nobody reads any more; another error loses this line only
          if (code === 'EPIPE' || code === 'EBADF') broken = true;
          return;
        }
      }
    },
  };
}
