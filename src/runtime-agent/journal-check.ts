import * as fs from 'node:fs';
import { endianness } from 'node:os';

/** A journal that must not be opened as it is (the CLI exits 1 naming the cause and --reset-journal). */
export class JournalRefusedError extends Error {
  constructor(readonly file: string, cause: string) {
    super(`refusing the journal ${file}: ${cause}. Nothing was changed. To start over with an empty journal, run serve once with`
      + ' --reset-journal (the refused files are kept beside it as *.refused-<time>).');
    this.name = 'JournalRefusedError';
  }
}

const WAL_MAGIC = 0x377f0682;

/**
 * Reads a SQLite write-ahead log and says whether it is damaged in a way SQLite would silently
 * ignore: a bad header, or a frame that fails its checksum followed by frames of the same
 * generation (a torn last write is normal after a crash and is not reported).
 */
export function walDamage(walFile: string): string | null {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(walFile);
  } catch {
    return null;
  }
  if (buf.length === 0) return null;
  if (buf.length < 32) return `its write-ahead log is ${buf.length} bytes, shorter than a header`;
  const magic = buf.readUInt32BE(0);
  if ((magic & ~1) >>> 0 !== WAL_MAGIC) return 'its write-ahead log has a damaged header';
  const be = (magic & 1) === 1;
  const word = (off: number): number => (be ? buf.readUInt32BE(off) : buf.readUInt32LE(off));
  let s0 = 0;
  let s1 = 0;
  const sum = (start: number, len: number): void => {
    for (let i = start; i < start + len; i += 8) {
      s0 = (s0 + word(i) + s1) >>> 0;
      s1 = (s1 + word(i + 4) + s0) >>> 0;
    }
  };
  sum(0, 24);
  if (s0 !== buf.readUInt32BE(24) || s1 !== buf.readUInt32BE(28)) return 'its write-ahead log has a damaged header';
  let pageSize = buf.readUInt32BE(8);
  if (pageSize === 1) pageSize = 65536;
  if (pageSize < 512 || (pageSize & (pageSize - 1)) !== 0) return 'its write-ahead log has a damaged header';
  const salt1 = buf.readUInt32BE(16);
  const salt2 = buf.readUInt32BE(20);
  const frameLen = 24 + pageSize;
  let badAt = -1;
  for (let off = 32, i = 0; off + frameLen <= buf.length; off += frameLen, i++) {
    const sameGen = buf.readUInt32BE(off + 8) === salt1 && buf.readUInt32BE(off + 12) === salt2;
    if (badAt >= 0) {
      if (sameGen) return `its write-ahead log is damaged at frame ${badAt}: later changes would be silently dropped`;
      continue;
    }
    if (!sameGen) {
      badAt = i;
      continue;
    }
    const [c0, c1] = [s0, s1];
    sum(off, 8);
    sum(off + 24, pageSize);
    if (s0 !== buf.readUInt32BE(off + 16) || s1 !== buf.readUInt32BE(off + 20)) {
      badAt = i;
      [s0, s1] = [c0, c1];
    }
  }
  return null;
}

/**
 * After a crash the wal-index (`-shm`) still says how many frames the write-ahead log held; when it
 * says some but the log is gone, those changes were deleted. (A clean close, or a tool that
 * checkpointed the log, removes both files.)
 */
export function walMissing(dbFile: string): string | null {
  if (fs.existsSync(`${dbFile}-wal`)) return null;
  let hdr: Buffer;
  try {
    hdr = fs.readFileSync(`${dbFile}-shm`).subarray(0, 48);
  } catch {
    return null;
  }
  if (hdr.length < 48 || hdr[12] !== 1) return null;
  const mxFrame = endianness() === 'LE' ? hdr.readUInt32LE(16) : hdr.readUInt32BE(16);
  return mxFrame > 0
    ? `its write-ahead log (${dbFile.split('/').pop()}-wal) is missing after an unclean stop while the wal-index records ${mxFrame} frames: the latest accepted jobs would be silently lost`
    : null;
}
