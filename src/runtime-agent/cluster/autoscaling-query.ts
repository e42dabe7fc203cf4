import { createHash, createHmac } from 'node:crypto';
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { SignatureV4 } from '@smithy/signature-v4';

/**
 * The two Auto Scaling calls a host makes, over the AWS Query protocol (form POST, Action=..., Version=2011-01-01),
 * signed with SigV4 for service `autoscaling`. Hand-signed because @aws-sdk/client-auto-scaling@3.1175.0 is not
 * published; bundled as its own file (autoscaling-aws.js) so start-up never parses the credential chain.
 * API: https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_SetInstanceProtection.html and
 * https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_CompleteLifecycleAction.html
 */
export interface AutoScalingCalls {
  setInstanceProtection(group: string, instanceId: string, protect: boolean): Promise<void>;
  completeLifecycleAction(group: string, hook: string, instanceId: string, result: 'CONTINUE' | 'ABANDON'): Promise<void>;
}

class NodeSha256 {
  private readonly h;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.h = secret === undefined ? createHash('sha256') : createHmac('sha256', toBuffer(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.h.update(toBuffer(data));
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.h.digest()));
  }
}

function toBuffer(d: string | ArrayBuffer | ArrayBufferView): Buffer {
  if (typeof d === 'string') return Buffer.from(d, 'utf8');
  if (ArrayBuffer.isView(d)) return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
  return Buffer.from(d);
}

export function createAutoScalingCalls(region: string, env: NodeJS.ProcessEnv = process.env): AutoScalingCalls {
  // AWS_ENDPOINT_URL_AUTO_SCALING is the SDKs' service-specific endpoint variable (tests point it at a fake).
  const endpoint = new URL(env.AWS_ENDPOINT_URL_AUTO_SCALING || env.AWS_ENDPOINT_URL || `https://autoscaling.${region}.amazonaws.com`);
  const signer = new SignatureV4({ service: 'autoscaling', region, credentials: defaultProvider(), sha256: NodeSha256 });
  const call = async (params: Record<string, string>): Promise<void> => {
    const body = new URLSearchParams({ ...params, Version: '2011-01-01' }).toString();
    const path = endpoint.pathname || '/';
    const signed = await signer.sign({
      method: 'POST', protocol: endpoint.protocol, hostname: endpoint.hostname, port: endpoint.port ? Number(endpoint.port) : undefined, path, query: {},
      headers: { host: endpoint.host, 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' }, body,
    });
    const res = await fetch(new URL(path, endpoint), { method: 'POST', headers: signed.headers as Record<string, string>, body, signal: AbortSignal.timeout(10_000) });
    if (!res.ok) {
      const text = await res.text();
      const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? `HTTP ${res.status}`;
      const message = /<Message>([^<]*)<\/Message>/.exec(text)?.[1] ?? text.slice(0, 200);
      throw new Error(`Auto Scaling ${params.Action} failed: ${code}: ${message}`);
    }
  };
  return {
    setInstanceProtection: (group, instanceId, protect) => call({
      Action: 'SetInstanceProtection', AutoScalingGroupName: group, 'InstanceIds.member.1': instanceId, ProtectedFromScaleIn: String(protect),
    }),
    completeLifecycleAction: (group, hook, instanceId, result) => call({
      Action: 'CompleteLifecycleAction', AutoScalingGroupName: group, LifecycleHookName: hook, InstanceId: instanceId, LifecycleActionResult: result,
    }),
  };
}
