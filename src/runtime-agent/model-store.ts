import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { joinUri, localPathOf, type Storage } from './storage/index';
import { FileStore } from './storage/file';

/** `<artifactsUri>/models/current`: which run's model is promoted (written by a deployIfBetter step). */
export interface CurrentModel {
  readonly runId: string;
  readonly metric: string;
  readonly value: number;
  readonly promotedAt: string;
  /** `<artifactsUri>/runs/<run-id>/model/` (informational; consumers may derive it from runId). */
  readonly modelUri?: string;
}

/** Run ids the runner generates: `20261124T203000Z-1a2b3c` (UTC start time, then 6 hex digits). */
export const GENERATED_RUN_ID = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z-[0-9a-f]{6}$/;

/** The start time encoded in a generated run id, or null for a custom one. */
export function runIdTime(runId: string): number | null {
  const m = GENERATED_RUN_ID.exec(runId);
  if (!m) return null;
  const t = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  return Number.isFinite(t) ? t : null;
}

/** A file as uploadRun sent it: its stat signature, and its digest when it had changed just before. */
interface Sent {
  readonly sig: string;
  readonly sha?: string;
}

/** How recent a change must be for a file's times alone not to tell a later change (far above a jiffy). */
const RACY_MS = 1000;

async function sha256Of(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * The model store of one pipeline: `<artifactsUri>/runs/<run-id>/...` and `<artifactsUri>/models/current`,
 * on any backend of `Storage` (file://, s3://, gs://).
 */
export class ModelStore {
  /** Per run directory, each file as it was sent last: unchanged files are not sent again (see uploadRun). */
  private readonly sent = new Map<string, Map<string, Sent>>();

  constructor(private readonly storage: Storage, readonly artifactsUri: string) {}

  runUri(runId: string): string {
    return joinUri(this.artifactsUri, `runs/${runId}/`);
  }

  get currentUri(): string {
    return joinUri(this.artifactsUri, 'models/current');
  }

  /** Reads a JSON object, or undefined when it does not exist. */
  async readJson<T>(uri: string): Promise<T | undefined> {
    if (!(await this.storage.exists(uri))) return undefined;
    const tmp = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'mlinfra-json-'));
    try {
      const local = path.join(tmp, 'object.json');
      await this.storage.get(uri, local);
      return JSON.parse(await fs.promises.readFile(local, 'utf8')) as T;
    } finally {
      await fs.promises.rm(tmp, { recursive: true, force: true });
    }
  }

  async writeJson(uri: string, value: unknown): Promise<void> {
    const tmp = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'mlinfra-json-'));
    try {
      const local = path.join(tmp, 'object.json');
      await fs.promises.writeFile(local, `${JSON.stringify(value, null, 2)}\n`);
      await this.storage.put(local, uri);
    } finally {
      await fs.promises.rm(tmp, { recursive: true, force: true });
    }
  }

  /** The promoted model, or undefined when nothing was promoted yet. Throws on an unreadable object. */
  async current(): Promise<CurrentModel | undefined> {
    const c = await this.readJson<CurrentModel>(this.currentUri);
    if (c === undefined) return undefined;
    if (!c || typeof c !== 'object' || typeof c.runId !== 'string' || typeof c.value !== 'number') {
      throw new Error(`${this.currentUri} is not {runId, metric, value, promotedAt}: ${JSON.stringify(c).slice(0, 200)}`);
    }
    return c;
  }

  async promote(runId: string, metric: string, value: number, now: Date): Promise<CurrentModel> {
    const c: CurrentModel = { runId, metric, value, promotedAt: now.toISOString(), modelUri: joinUri(this.runUri(runId), 'model/') };
    await this.writeJson(this.currentUri, c);
    return c;
  }

  /**
   * Copies a local run directory to `runs/<run-id>/` (files are overwritten, nothing is deleted). The
   * runner calls it after every step: a file this store already sent and that has not changed since
   * (same size, mtime, ctime and inode) is not sent again, so a run of N steps sends each output once,
   * not N times. Returns how many files were sent.
   */
  async uploadRun(runId: string, localDir: string): Promise<number> {
    const key = `${runId}\0${path.resolve(localDir)}`;
    const sent = this.sent.get(key) ?? new Map<string, Sent>();
    this.sent.set(key, sent);
    let n = 0;
    for (const f of await new FileStore().list(localDir)) {
      const local = localPathOf(f.uri);
      const st = await fs.promises.stat(local);
      const sig = `${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.ino}`;
      // file times tick coarsely (a jiffy): a file changed shortly before it was sent could change
      // again within the same tick with the same size. Such a file is also known by its digest.
      const racy = Math.max(st.mtimeMs, st.ctimeMs) > Date.now() - RACY_MS;
      const prev = sent.get(f.key);
      let sha: string | undefined;
      if (prev?.sig === sig) {
        if (prev.sha === undefined) continue;
        sha = await sha256Of(local);
        if (sha === prev.sha) {
          if (!racy) sent.set(f.key, { sig });
          continue;
        }
      }
      if (racy) sha ??= await sha256Of(local);
      await this.storage.put(local, joinUri(this.runUri(runId), f.key));
      sent.set(f.key, { sig, ...(racy ? { sha } : {}) });
      n++;
    }
    return n;
  }

  /**
   * When the most recent run started (ms since the epoch), or null when there is none. Generated run ids
   * carry their start time; for other ids `runs/<id>/run.json` (`startedAt`) is read.
   */
  async latestRunStart(): Promise<{ runId: string; startedAt: number } | null> {
    const prefix = joinUri(this.artifactsUri, 'runs/');
    const ids = new Set<string>();
    for (const o of await this.storage.list(prefix)) {
      const id = o.key.split('/')[0];
      if (id && o.key.includes('/')) ids.add(id);
    }
    let best: { runId: string; startedAt: number } | null = null;
    for (const id of ids) {
      let t = runIdTime(id);
      if (t === null) {
        try {
          const run = await this.readJson<{ startedAt?: string }>(joinUri(prefix, `${id}/run.json`));
          t = run?.startedAt ? Date.parse(run.startedAt) : null;
        } catch {
          t = null;
        }
      }
      if (t !== null && Number.isFinite(t) && (!best || t > best.startedAt)) best = { runId: id, startedAt: t };
    }
    return best;
  }
}
