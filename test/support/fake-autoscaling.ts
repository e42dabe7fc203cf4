import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One recorded Auto Scaling query call: its form parameters and the SigV4 credential scope it was signed for. */
export interface AutoScalingCall {
  readonly params: Record<string, string>;
  readonly scope: string;
  /** Date.now() when it was answered */
  readonly at: number;
}

/**
 * A recording fake of the Auto Scaling Query API (form POST, Action=..., Version=2011-01-01) on loopback:
 * SetInstanceProtection and CompleteLifecycleAction. It checks the request is SigV4-signed for `autoscaling`
 * (it does not verify the signature) and answers the Query protocol's XML; `failNext` answers one error.
 */
export async function fakeAutoScaling(): Promise<{ url: string; calls: AutoScalingCall[]; failNext(code: string): void; close(): Promise<void> }> {
  const calls: AutoScalingCall[] = [];
  let fail: string | undefined;
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => { body += c.toString(); });
    req.on('end', () => {
      const auth = String(req.headers.authorization ?? '');
      const scope = /Credential=[^/]+\/\d{8}\/([^/]+\/[^/]+)\/aws4_request/.exec(auth)?.[1];
      const params = Object.fromEntries(new URLSearchParams(body));
      const error = (status: number, code: string): void => {
        res.writeHead(status, { 'content-type': 'text/xml' })
          .end(`<ErrorResponse><Error><Type>Sender</Type><Code>${code}</Code><Message>${code} from the fake</Message></Error></ErrorResponse>`);
      };
      if (req.method !== 'POST' || !auth.startsWith('AWS4-HMAC-SHA256 ') || !scope) return error(403, 'MissingAuthenticationToken');
      if (params.Version !== '2011-01-01') return error(400, 'InvalidAction');
      if (fail) { const code = fail; fail = undefined; return error(400, code); }
      const required: Record<string, string[]> = {
        SetInstanceProtection: ['AutoScalingGroupName', 'InstanceIds.member.1', 'ProtectedFromScaleIn'],
        CompleteLifecycleAction: ['AutoScalingGroupName', 'LifecycleHookName', 'InstanceId', 'LifecycleActionResult'],
      };
      const need = required[params.Action];
      if (!need) return error(400, 'InvalidAction');
      if (need.some((k) => !params[k])) return error(400, 'ValidationError');
      calls.push({ params, scope, at: Date.now() });
      res.writeHead(200, { 'content-type': 'text/xml' })
        .end(`<${params.Action}Response xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><${params.Action}Result/><ResponseMetadata><RequestId>r${calls.length}</RequestId></ResponseMetadata></${params.Action}Response>`);
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`,
    calls,
    failNext: (code) => { fail = code; },
    close: () => new Promise((r) => srv.close(() => r())),
  };
}

/** An IMDSv2 fake for an Auto Scaling instance: id, region, group tag and a switchable target lifecycle state. */
export async function fakeAsgImds(o: { instanceId: string; region: string; group?: string }): Promise<{ url: string; setState(s: string): void; close(): Promise<void>; seen: string[] }> {
  let state = 'InService';
  const seen: string[] = [];
  const srv = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (req.method === 'PUT' && req.url === '/latest/api/token') {
      if (!req.headers['x-aws-ec2-metadata-token-ttl-seconds']) { res.writeHead(400).end(); return; }
      res.writeHead(200).end('imds-token');
      return;
    }
    if (req.headers['x-aws-ec2-metadata-token'] !== 'imds-token') { res.writeHead(401).end(); return; }
    const values: Record<string, string | undefined> = {
      '/latest/meta-data/instance-id': o.instanceId,
      '/latest/meta-data/placement/region': o.region,
      // present only when the launch template enables instance metadata tags
      '/latest/meta-data/tags/instance/aws:autoscaling:groupName': o.group,
      '/latest/meta-data/autoscaling/target-lifecycle-state': state,
    };
    const v = values[req.url ?? ''];
    if (v === undefined) { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': 'text/plain' }).end(v);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`,
    setState: (s) => { state = s; },
    close: () => new Promise((r) => srv.close(() => r())),
    seen,
  };
}
