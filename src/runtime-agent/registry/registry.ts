/**
 * The model registry of one pipeline, in its artifact store (file://, s3://, gs://):
 *
 *   <artifacts>/models/versions/v<N>/version.json   immutable record: run, metrics, params, versions, files
 *   <artifacts>/models/versions/v<N>/model/...      the model files, copied from the run
 *   <artifacts>/models/registry.json                 which version serves, with the history of moves
 *
 * Every write that two hosts could race is a conditional write (S3 If-Match / If-None-Match, GCS
 * generation preconditions, a lock + rename on file://): a version number is taken by creating its
 * record only if absent, and a move first claims the pointer (`pending`, written only if unchanged since
 * read), so two concurrent promotions cannot both roll out: the second is refused. The pointer moves
 * after the rollout succeeded: a rollout that fails leaves it on the version that serves.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { joinUri, PreconditionFailed, type Storage } from '../storage/index';

export interface ModelFile {
  /** Path under the version's `model/` prefix. */
  readonly key: string;
  readonly bytes: number;
  readonly sha256: string;
}

export interface ModelVersion {
  readonly version: string;
  readonly pipeline: string;
  readonly runId: string;
  readonly createdAt: string;
  readonly metrics: Readonly<Record<string, number>>;
  readonly params: Readonly<Record<string, unknown>>;
  readonly codeVersion: string | null;
  readonly dataVersion: string | null;
  /** Hash of the pipeline spec the run executed. */
  readonly pipelineSpecHash: string | null;
  /** Where the files were copied from (the run's model directory). */
  readonly source: string;
  readonly files: readonly ModelFile[];
  /** `<artifacts>/models/versions/<version>/model/`: what a server loads. */
  readonly modelUri: string;
}

export type MoveAction = 'promote' | 'rollback';

export interface RegistryMove {
  readonly version: string;
  readonly action: MoveAction;
  readonly at: string;
  readonly from: string | null;
  /** 'failed': the rollout failed and `from` kept serving. */
  readonly outcome: 'done' | 'failed';
  readonly reason?: string;
}

export interface RegistryState {
  readonly current: string | null;
  /** Newest last. */
  readonly history: readonly RegistryMove[];
  /** A move whose rollout is under way; other moves are refused until it ends or goes stale. */
  readonly pending?: { readonly version: string; readonly action: MoveAction; readonly since: string };
}

export interface RegisterInput {
  readonly runId: string;
  /** A local directory holding the model files. */
  readonly modelDir: string;
  readonly source?: string;
  readonly metrics?: Readonly<Record<string, number>>;
  readonly params?: Readonly<Record<string, unknown>>;
  readonly codeVersion?: string;
  readonly dataVersion?: string;
  readonly pipelineSpecHash?: string;
}

export interface MoveOptions {
  readonly reason?: string;
  /**
   * Runs the target's rollout of the version (SageMaker, Cloud Run, Kubernetes) before the pointer
   * moves; when it throws, the pointer stays where it was.
   */
  readonly rollout?: (v: ModelVersion, from: ModelVersion | null) => Promise<unknown>;
}

/** What went wrong, with a stable code the CLI and HTTP routes report. */
export class RegistryError extends Error {
  constructor(readonly code: 'not_found' | 'missing_files' | 'conflict' | 'unreadable' | 'bad_request' | 'rollout_failed', message: string) {
    super(message);
    this.name = 'RegistryError';
  }
}

const VERSION = /^v([1-9]\d{0,8})$/;
/** History kept in the pointer object; older moves stay in each version's record of the run. */
const HISTORY_LIMIT = 200;
const MAX_TAKE_ATTEMPTS = 20;
/** A pending move older than this was left by a host that died mid-rollout: the next move may take over. */
const PENDING_STALE_MS = 60 * 60 * 1000;

export class ModelRegistry {
  readonly root: string;

  constructor(private readonly storage: Storage, readonly artifactsUri: string, readonly pipeline: string, private readonly now: () => Date = () => new Date()) {
    this.root = joinUri(artifactsUri, 'models/');
  }

  get stateUri(): string {
    return joinUri(this.root, 'registry.json');
  }

  versionUri(version: string): string {
    return joinUri(this.root, `versions/${version}/`);
  }

  /** Registered versions, oldest first. */
  async list(): Promise<ModelVersion[]> {
    const numbers = await this.versionNumbers();
    const out: ModelVersion[] = [];
    for (const n of numbers) out.push(await this.show(`v${n}`));
    return out;
  }

  async show(version: string): Promise<ModelVersion> {
    if (!VERSION.test(version)) throw new RegistryError('bad_request', `version ${JSON.stringify(version)} is not a registry version: allowed v1, v2, ...`);
    const rec = await this.storage.readVersioned(joinUri(this.versionUri(version), 'version.json'));
    if (!rec) {
      const known = await this.versionNumbers();
      throw new RegistryError('not_found', `model version ${version} does not exist in ${this.root}; versions: ${known.length ? known.map((n) => `v${n}`).join(', ') : 'none yet'}`);
    }
    try {
      return JSON.parse(rec.text) as ModelVersion;
    } catch (e) {
      throw new RegistryError('unreadable', `${joinUri(this.versionUri(version), 'version.json')} is not JSON: ${(e as Error).message}`);
    }
  }

  async state(): Promise<RegistryState & { readonly tag: string | null }> {
    const rec = await this.storage.readVersioned(this.stateUri);
    if (!rec) return { current: null, history: [], tag: null };
    let s: RegistryState;
    try {
      s = JSON.parse(rec.text) as RegistryState;
    } catch (e) {
      throw new RegistryError('unreadable', `${this.stateUri} is not JSON: ${(e as Error).message}`);
    }
    if (!s || !Array.isArray(s.history) || (s.current !== null && typeof s.current !== 'string')) {
      throw new RegistryError('unreadable', `${this.stateUri} is not {current, history}: ${rec.text.slice(0, 200)}`);
    }
    return { current: s.current, history: s.history, ...(s.pending ? { pending: s.pending } : {}), tag: rec.tag };
  }

  /** The version that serves, or null before the first promotion. */
  async current(): Promise<ModelVersion | null> {
    const s = await this.state();
    return s.current ? this.show(s.current) : null;
  }

  /**
   * Registers the files of `input.modelDir` as a new immutable version: the number is taken by creating
   * its record only if absent (a racing registration takes the next one), then the files are copied.
   */
  async register(input: RegisterInput): Promise<ModelVersion> {
    const files = await manifest(input.modelDir);
    if (files.length === 0) throw new RegistryError('missing_files', `no model files in ${input.modelDir}: write the model under $MLINFRA_ARTIFACT_DIR/model/`);
    let n = ((await this.versionNumbers()).at(-1) ?? 0) + 1;
    for (let attempt = 0; attempt < MAX_TAKE_ATTEMPTS; attempt++, n++) {
      const version = `v${n}`;
      const rec: ModelVersion = {
        version, pipeline: this.pipeline, runId: input.runId, createdAt: this.now().toISOString(),
        metrics: input.metrics ?? {}, params: input.params ?? {}, codeVersion: input.codeVersion ?? null, dataVersion: input.dataVersion ?? null,
        pipelineSpecHash: input.pipelineSpecHash ?? null, source: input.source ?? input.modelDir, files,
        modelUri: joinUri(this.versionUri(version), 'model/'),
      };
      try {
        await this.storage.writeIf(joinUri(this.versionUri(version), 'version.json'), `${JSON.stringify(rec, null, 2)}\n`, null);
      } catch (e) {
        if (e instanceof PreconditionFailed) continue;
        throw e;
      }
      for (const f of files) await this.storage.put(path.join(input.modelDir, ...f.key.split('/')), joinUri(rec.modelUri, f.key));
      return rec;
    }
    throw new RegistryError('conflict', `could not take a version number after ${MAX_TAKE_ATTEMPTS} tries: too many concurrent registrations in ${this.root}`);
  }

  /** Rolls `version` out and then moves the pointer to it, only if no other move happened meanwhile. */
  async promote(version: string, opts: MoveOptions = {}): Promise<RegistryState> {
    return this.move(version, 'promote', opts);
  }

  /** Moves back to the version that served before the current one (through the same rollout). */
  async rollback(opts: MoveOptions = {}): Promise<RegistryState> {
    const s = await this.state();
    if (!s.current) throw new RegistryError('not_found', `nothing to roll back in ${this.root}: no version was promoted yet`);
    const last = [...s.history].reverse().find((m) => m.version === s.current && m.outcome === 'done');
    if (!last?.from) throw new RegistryError('not_found', `nothing to roll back to: ${s.current} is the first version that served`);
    return this.move(last.from, 'rollback', opts);
  }

  /** Checks that every file of the version's manifest is in the store with its size. */
  async verifyFiles(v: ModelVersion): Promise<void> {
    const present = new Map<string, true>();
    for (const o of await this.storage.list(v.modelUri)) present.set(o.key, true);
    const missing = v.files.filter((f) => !present.has(f.key)).map((f) => f.key);
    if (missing.length) {
      throw new RegistryError('missing_files', `model version ${v.version} is missing ${missing.length} of ${v.files.length} files under ${v.modelUri} (${missing.slice(0, 5).join(', ')}): register the run again`);
    }
  }

  private async move(version: string, action: MoveAction, opts: MoveOptions): Promise<RegistryState> {
    const target = await this.show(version);
    await this.verifyFiles(target);
    const s = await this.state();
    if (s.pending && this.now().getTime() - Date.parse(s.pending.since) < PENDING_STALE_MS) {
      throw new RegistryError('conflict', `a ${s.pending.action} of ${s.pending.version} is rolling out since ${s.pending.since}: wait for it to end`);
    }
    if (s.current === version) throw new RegistryError('bad_request', `${version} already serves`);
    const from = s.current ? await this.show(s.current) : null;
    const base = { current: s.current, history: s.history };
    // Claim the pointer: of two racing moves, one write lands and the other is refused here.
    const claimed = await this.write({ ...base, pending: { version, action, since: this.now().toISOString() } }, s.tag, version);
    const record = (outcome: RegistryMove['outcome'], reason?: string): RegistryMove => ({
      version, action, at: this.now().toISOString(), from: s.current, outcome, ...(reason ? { reason } : {}),
    });
    if (opts.rollout) {
      try {
        await opts.rollout(target, from);
      } catch (e) {
        const why = (e as Error).message;
        await this.write({ current: s.current, history: [...s.history, record('failed', why)].slice(-HISTORY_LIMIT) }, claimed, version);
        throw new RegistryError('rollout_failed', `rollout of ${version} failed, ${s.current ?? 'nothing'} still serves: ${why}`);
      }
    }
    const next: RegistryState = { current: version, history: [...s.history, record('done', opts.reason)].slice(-HISTORY_LIMIT) };
    await this.write(next, claimed, version);
    return next;
  }

  private async write(state: RegistryState, tag: string | null, version: string): Promise<string> {
    try {
      return await this.storage.writeIf(this.stateUri, `${JSON.stringify(state, null, 2)}\n`, tag);
    } catch (e) {
      if (!(e instanceof PreconditionFailed)) throw e;
      const now = await this.state();
      throw new RegistryError('conflict', `another move changed ${this.stateUri} (now ${now.current ?? 'nothing'}${now.pending ? `, ${now.pending.version} pending` : ''}) while moving to ${version}: it wins; check it and try again`);
    }
  }

  private async versionNumbers(): Promise<number[]> {
    const numbers = new Set<number>();
    for (const o of await this.storage.list(joinUri(this.root, 'versions/'))) {
      const [dir, file] = o.key.split('/');
      const m = VERSION.exec(dir);
      if (m && file === 'version.json') numbers.add(Number(m[1]));
    }
    return [...numbers].sort((a, b) => a - b);
  }
}

/** Every file under `dir`, sorted, with size and SHA-256. */
async function manifest(dir: string): Promise<ModelFile[]> {
  const out: ModelFile[] = [];
  const walk = async (d: string, rel: string): Promise<void> => {
    let entries: fs.Dirent[];
    try {
      entries = await fs.promises.readdir(d, { withFileTypes: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    for (const e of entries) {
      const key = rel ? `${rel}/${e.name}` : e.name;
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p, key);
      else if (e.isFile()) {
        const hash = createHash('sha256');
        for await (const chunk of fs.createReadStream(p)) hash.update(chunk as Buffer);
        out.push({ key, bytes: (await fs.promises.stat(p)).size, sha256: hash.digest('hex') });
      }
    }
  };
  await walk(dir, '');
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}
