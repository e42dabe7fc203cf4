/**
 * A small fake of the SageMaker API (AWS JSON 1.1 protocol) on loopback, for the calls a rollout
 * makes: DescribeEndpoint, CreateModel, CreateEndpointConfig, UpdateEndpoint. It records every call.
 * An update stays `Updating` for `updatePolls` DescribeEndpoint calls, then ends as `outcome` says:
 * 'succeed' (the new config InService), 'rollback' (`RollingBack`, then the old config InService, as
 * after a rollback alarm), or 'fail' (the new fleet failed its health check: the old config InService
 * with a FailureReason, as SageMaker reports a failed update). Not modelled: instance capacity, the
 * traffic shifting itself, alarms, tags beyond recording, any other call.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeSageMaker {
  readonly url: string;
  readonly calls: { readonly op: string; readonly body: Record<string, any> }[];  
  /** How the next update ends. */
  outcome: 'succeed' | 'rollback' | 'fail';
  updatePolls: number;
  /** Makes the next UpdateEndpoint answer this ValidationException instead. */
  refuseNextUpdate?: string;
  endpoint(name: string): { config: string; status: string } | undefined;
  close(): Promise<void>;
}

interface Ep { config: string; status: string; next?: string; polls: number; failure?: string; rollingBack?: boolean }

export async function startFakeSageMaker(endpoints: Record<string, string>): Promise<FakeSageMaker> {
  const eps = new Map<string, Ep>(Object.entries(endpoints).map(([n, c]) => [n, { config: c, status: 'InService', polls: 0 }]));
  const models = new Set<string>();
  const configs = new Set<string>(Object.values(endpoints));
  const fake: FakeSageMaker = {
    url: '', calls: [], outcome: 'succeed', updatePolls: 2,
    endpoint: (n) => { const e = eps.get(n); return e && { config: e.config, status: e.status }; },
    close: () => new Promise((r) => srv.close(() => r())),
  };
  const bad = (res: http.ServerResponse, message: string) =>
    res.writeHead(400, { 'content-type': 'application/x-amz-json-1.1' }).end(JSON.stringify({ __type: 'ValidationException', message }));
  const ok = (res: http.ServerResponse, v: unknown) => res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' }).end(JSON.stringify(v));
  const srv = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => { raw += c.toString(); });
    req.on('end', () => {
      const op = String(req.headers['x-amz-target'] ?? '').replace(/^SageMaker\./, '');
      const body = raw ? JSON.parse(raw) : {};
      fake.calls.push({ op, body });
      switch (op) {
        case 'DescribeEndpoint': {
          const e = eps.get(body.EndpointName);
          if (!e) return bad(res, `Could not find endpoint "${body.EndpointName}".`);
          if (e.status === 'Updating' && ++e.polls >= fake.updatePolls) {
            if (fake.outcome === 'succeed') Object.assign(e, { status: 'InService', config: e.next, next: undefined });
            else if (fake.outcome === 'fail') Object.assign(e, { status: 'InService', next: undefined, failure: 'The primary container for production variant AllTraffic did not pass the ping health check.' });
            else Object.assign(e, { status: 'RollingBack', next: undefined });
          } else if (e.status === 'RollingBack') {
            e.status = 'InService';
          }
          return ok(res, { EndpointName: body.EndpointName, EndpointArn: `arn:aws:sagemaker:us-east-1:123456789012:endpoint/${body.EndpointName}`,
            EndpointConfigName: e.config, EndpointStatus: e.status, ...(e.failure ? { FailureReason: e.failure } : {}), CreationTime: 0, LastModifiedTime: 0 });
        }
        case 'CreateModel':
          if (models.has(body.ModelName)) return bad(res, `Cannot create already existing model "arn:aws:sagemaker:us-east-1:123456789012:model/${body.ModelName}".`);
          models.add(body.ModelName);
          return ok(res, { ModelArn: `arn:aws:sagemaker:us-east-1:123456789012:model/${body.ModelName}` });
        case 'CreateEndpointConfig':
          if (configs.has(body.EndpointConfigName)) return bad(res, `Cannot create already existing endpoint configuration "${body.EndpointConfigName}".`);
          for (const v of body.ProductionVariants ?? []) if (!models.has(v.ModelName)) return bad(res, `Could not find model "${v.ModelName}".`);
          configs.add(body.EndpointConfigName);
          return ok(res, { EndpointConfigArn: `arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/${body.EndpointConfigName}` });
        case 'UpdateEndpoint': {
          const e = eps.get(body.EndpointName);
          if (fake.refuseNextUpdate) {
            const m = fake.refuseNextUpdate;
            fake.refuseNextUpdate = undefined;
            return bad(res, m);
          }
          if (!e) return bad(res, `Could not find endpoint "${body.EndpointName}".`);
          if (e.status !== 'InService') return bad(res, `Cannot update in-progress endpoint "${body.EndpointName}".`);
          if (!configs.has(body.EndpointConfigName)) return bad(res, `Could not find endpoint configuration "${body.EndpointConfigName}".`);
          Object.assign(e, { status: 'Updating', next: body.EndpointConfigName, polls: 0, failure: undefined });
          return ok(res, { EndpointArn: `arn:aws:sagemaker:us-east-1:123456789012:endpoint/${body.EndpointName}` });
        }
        default:
          return bad(res, `fake SageMaker: ${op} is not modelled`);
      }
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  (fake as { url: string }).url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  return fake;
}
