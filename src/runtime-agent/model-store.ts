import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { joinUri, type Storage } from './storage/index';

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

/**
 * The model store of one pipeline: `<artifactsUri>/runs/<run-id>/...` and `<artifactsUri>/models/current`,
 * on any backend of `Storage` (file://, s3://, gs://).
 */
export class ModelStore {
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

  /** Copies a local run directory to `runs/<run-id>/` (files are overwritten, nothing is deleted). */
  async uploadRun(runId: string, localDir: string): Promise<number> {
    return this.storage.putDir(localDir, this.runUri(runId));
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
