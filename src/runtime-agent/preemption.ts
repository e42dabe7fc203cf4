import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { PreemptionProvider } from './options';

export interface PreemptionNotice {
  readonly provider: 'aws' | 'gcp';
  readonly detail: string;
}

interface PreemptionEvents {
  notice: [notice: PreemptionNotice];
}

export interface PreemptionWatcherOptions {
  readonly provider: PreemptionProvider;
  readonly awsImdsUrl: string;
  readonly gcpMetadataUrl: string;
  readonly pollSeconds: number;
  readonly logger: Logger;
}

/** One IMDSv2 read (PUT /latest/api/token, then GET /latest/PATH); null on 404. */
export async function imdsGet(imdsUrl: string, path: string): Promise<string | null> {
  const base = imdsUrl.replace(/\/+$/, '');
  const signal = AbortSignal.timeout(2000);
  const tokenRes = await fetch(`${base}/latest/api/token`, { method: 'PUT', headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '300' }, signal });
  if (!tokenRes.ok) throw new Error(`IMDSv2 token request answered ${tokenRes.status}`);
  const token = await tokenRes.text();
  const res = await fetch(`${base}/latest/${path}`, { headers: { 'X-aws-ec2-metadata-token': token }, signal });
  if (res.status === 404) return null;
  if (!res.ok) throw new Error(`${path} answered ${res.status}`);
  return res.text();
}

/**
 * Polls the cloud's metadata service for a spot interruption / preemption notice and emits `notice`
 * once. AWS: IMDSv2 (PUT /latest/api/token, then GET /latest/meta-data/spot/instance-action; 404
 * means no notice). GCP: GET /computeMetadata/v1/instance/preempted with Metadata-Flavor: Google
 * ("TRUE" means preempted).
 */
export class PreemptionWatcher extends EventEmitter<PreemptionEvents> {
  private timer: NodeJS.Timeout | undefined;
  private noticed = false;
  private stopped = false;
  private polling = false;

  constructor(private readonly o: PreemptionWatcherOptions) {
    super();
  }

  start(): void {
    if (this.o.provider === 'none' || this.timer) return;
    this.timer = setInterval(() => void this.poll(), this.o.pollSeconds * 1000);
    this.timer.unref();
    void this.poll();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  /** One check; returns the notice if there is one. */
  async check(): Promise<PreemptionNotice | null> {
    const signal = AbortSignal.timeout(2000);
    if (this.o.provider === 'aws') {
      const action = await imdsGet(this.o.awsImdsUrl, 'meta-data/spot/instance-action');
      return action === null ? null : { provider: 'aws', detail: action.slice(0, 500) };
    }
    if (this.o.provider === 'gcp') {
      const base = this.o.gcpMetadataUrl.replace(/\/+$/, '');
      const res = await fetch(`${base}/computeMetadata/v1/instance/preempted`, { headers: { 'Metadata-Flavor': 'Google' }, signal });
      if (!res.ok) throw new Error(`instance/preempted answered ${res.status}`);
      const body = (await res.text()).trim();
      return body === 'TRUE' ? { provider: 'gcp', detail: 'instance/preempted is TRUE' } : null;
    }
    return null;
  }

  private async poll(): Promise<void> {
    if (this.noticed || this.stopped || this.polling) return;
    this.polling = true;
    try {
      const notice = await this.check();
      if (notice && !this.noticed && !this.stopped) {
        this.noticed = true;
        clearInterval(this.timer);
        this.o.logger.warn({ notice }, 'preemption notice');
        this.emit('notice', notice);
      }
    } catch (e) {
      this.o.logger.debug({ err: (e as Error).message }, 'preemption check failed');
    } finally {
      this.polling = false;
    }
  }
}
