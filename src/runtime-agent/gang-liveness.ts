/**
 * Per-rank liveness for gangs: each running rank rewrites `<gang>/<A>/alive-<i>.json` every beat, and
 * watches its peers' records. A peer whose record has not changed for LOST_AFTER_BEATS beats (and
 * that has neither finished nor aborted) counts as lost: its host went away (kill -9, a reclaim with
 * no notice, a crash). A lost host is not the program's fault, so the attempt ends with kind `lost`,
 * which does not use up the gang's `retries` (cluster/gang.ts).
 *
 * Change is judged by the record's version tag as this host sees it, never by another host's clock.
 */
import { joinUri, PreconditionFailed, type Storage } from './storage/index';

/** How often a rank says it is alive: MLINFRA_GANG_HEARTBEAT_SECONDS (default 10; 0.2 at least). */
export const HEARTBEAT_ENV = 'MLINFRA_GANG_HEARTBEAT_SECONDS';
const DEFAULT_BEAT_S = 10;
/** Silent this many beats (one slow bucket write or two tolerated): lost. */
export const LOST_AFTER_BEATS = 3.5;

export function heartbeatMs(env: NodeJS.ProcessEnv): number {
  const s = Number(env[HEARTBEAT_ENV] ?? DEFAULT_BEAT_S);
  return Math.max(200, (Number.isFinite(s) && s > 0 ? s : DEFAULT_BEAT_S) * 1000);
}

const aliveKey = (rank: number): string => `alive-${rank}.json`;

/** Writes this rank's record every `beatMs` until stopped. A failed write is logged once and retried next beat. */
export class Heartbeat {
  private tag: string | null = null;
  private beat = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private warned = false;

  constructor(private readonly storage: Storage, private readonly dir: string, private readonly rank: number,
    private readonly host: string, private readonly beatMs: number, private readonly log: (s: string) => void) {}

  /** Writes the first record, then keeps beating. */
  async start(): Promise<void> {
    await this.once();
    const loop = (): void => {
      if (this.stopped) return;
      this.timer = setTimeout(() => { void this.once().finally(loop); }, this.beatMs);
    };
    loop();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private async once(): Promise<void> {
    const uri = joinUri(this.dir, aliveKey(this.rank));
    const text = `${JSON.stringify({ rank: this.rank, host: this.host, beat: ++this.beat, at: new Date().toISOString() })}\n`;
    try {
      this.tag = await this.storage.writeIf(uri, text, this.tag);
    } catch (e) {
      // the tag this rank holds is stale (a write that failed after it reached the store): take the current one
      if (e instanceof PreconditionFailed) this.tag = (await this.storage.readVersioned(uri).catch(() => null))?.tag ?? null;
      else if (!this.warned) {
        this.warned = true;
        this.log(`heartbeat write to ${uri} failed (retried every beat): ${(e as Error).message}`);
      }
    }
  }
}

export interface LostPeer {
  readonly rank: number;
  readonly host: string;
  readonly silentMs: number;
}

interface Seen { tag: string | null; host: string; changedAt: number }

/** What this rank knows of its peers' records: when each last changed, by this host's clock. */
export class Peers {
  private readonly seen = new Map<number, Seen>();
  private readonly lostAfterMs: number;
  private readonly from: number;

  /** `now`: when the peers count from (the ranks leave the barrier up to one barrier poll apart). */
  constructor(private readonly storage: Storage, private readonly dir: string, nodes: number, rank: number,
    private readonly beatMs: number, now = Date.now()) {
    this.lostAfterMs = beatMs * LOST_AFTER_BEATS;
    this.from = now;
    for (let r = 0; r < nodes; r++) if (r !== rank) this.seen.set(r, { tag: null, host: '?', changedAt: now });
  }

  /**
   * One look at the attempt's records. `aborted`: an abort record exists (whoever wrote it decides the
   * attempt). `lost`: peers neither done nor changed for the lost window. `done`: peers that finished.
   */
  async look(): Promise<{ aborted: boolean; lost: LostPeer[]; done: ReadonlySet<number> }> {
    const keys = new Set((await this.storage.list(this.dir)).map((o) => o.key));
    const now = Date.now();
    const done = new Set<number>();
    for (const [r, s] of this.seen) {
      if (keys.has(`done-${r}.json`)) {
        done.add(r);
        continue;
      }
      if (!keys.has(aliveKey(r))) continue;
      const v = await this.storage.readVersioned(joinUri(this.dir, aliveKey(r))).catch(() => null);
      if (v && v.tag !== s.tag) {
        s.tag = v.tag;
        s.changedAt = now;
        try {
          s.host = String((JSON.parse(v.text) as { host?: string }).host ?? '?');
        } catch {
          // a torn read: the tag still counts as a sign of life
        }
      }
    }
    const lost = [...this.seen].filter(([r, s]) => !done.has(r) && now - s.changedAt > this.lostAfterMs)
      .map(([r, s]) => ({ rank: r, host: s.host, silentMs: now - s.changedAt }));
    return { aborted: keys.has('abort.json'), lost, done };
  }

  /**
   * After this rank's own program failed: was a peer's host lost (its failure caused ours), or is
   * every peer alive (ours is the program's failure)? Waits until each peer is done, is lost, or has
   * beaten again since a first look taken now, or an abort record appears; at most the lost window
   * plus a beat. Only a change after that first look counts: a beat first seen now may have been
   * written just before its host died (the looks while the program ran are a beat apart).
   */
  async settle(): Promise<LostPeer[]> {
    const first = await this.look();
    if (first.aborted) return [];
    const base = new Map([...this.seen].map(([r, s]) => [r, s.tag]));
    const deadline = Math.max(Date.now(), this.from) + this.lostAfterMs + this.beatMs;
    for (;;) {
      const l = await this.look();
      if (l.aborted) return [];
      const settled = [...this.seen].every(([r, s]) => l.done.has(r) || (s.tag !== null && s.tag !== base.get(r)) || l.lost.some((p) => p.rank === r));
      if (settled || Date.now() >= deadline) return l.lost;
      await new Promise((r) => setTimeout(r, Math.min(1000, this.beatMs / 2)));
    }
  }
}

export function lostReason(lost: readonly LostPeer[], after: string): string {
  const who = lost.map((p) => `rank ${p.rank} (${p.host})`).join(', ');
  return `${who} stopped reporting for ${Math.round(Math.min(...lost.map((p) => p.silentMs)) / 1000)}s: its host was lost; ${after}`;
}
