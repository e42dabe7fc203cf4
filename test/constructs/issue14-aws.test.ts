/**
 * AWS defects found by the real provider (`npm run validate:terraform`) and by reading the output
 * against AWS's documentation: one test (or more) per defect, each failing before its fix.
 */
import 'cdktf/lib/testing/adapters/jest';
import { EventEmitter } from 'node:events';
import { TerraformStack, TerraformVariable } from 'cdktf';
import { Construct } from 'constructs';
import { AwsTarget, Duration, FeatureStore, GpuCluster, ModelEndpoint, ModelEndpointProps, MonitoringStack, Rollout, Schedule, Step, TrainingPipeline } from '../../src';
import { ECR_IMAGE_RE2, hasLocalStorage, MAX_EXECUTION_TIMEOUT_SECONDS, sagemakerRouting } from '../../src/constructs/model-endpoint/aws';
import { renderBootstrap, renderCloudWatchAgentConfig } from '../../src/constructs/gpu-cluster/bootstrap';
import { tfLiteral } from '../../src/core/terraform-literal';
import { AgentMetrics } from '../../src/runtime-agent/metrics';
import { only, resources, synth, TerraformJson } from '../helpers';
import { EXAMPLE_NAMES, exampleOutput } from '../support/examples';

const IMAGE = '123456789012.dkr.ecr.us-east-1.amazonaws.com/ltv-server:1.4.0';

function endpoint(props: Partial<ModelEndpointProps> = {}, extra?: (stack: TerraformStack, aws: AwsTarget) => void) {
  let e!: ModelEndpoint;
  const out = synth((stack) => {
    const aws = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
    e = new ModelEndpoint(stack, 'ltv-api', {
      target: aws, model: 's3://ml-models/ltv/v3', image: IMAGE, accelerator: 'L4', replicas: { min: 1, max: 2 }, ...props,
    });
    extra?.(stack, aws);
  });
  return { ...out, endpoint: e };
}

function warnings(c: Construct): string[] {
  return c.node.metadata.filter((m) => m.type === '@cdktf/warn').map((m) => String(m.data));
}

function cluster(props: Partial<ConstructorParameters<typeof GpuCluster>[2]> = {}, network = false) {
  return synth((stack) => {
    const aws = new AwsTarget(stack, 'aws', {
      region: 'us-east-1',
      ...(network ? { network: { vpcId: 'vpc-1', subnetIds: ['subnet-a', 'subnet-b'], cidrBlock: '10.0.0.0/16' } } : {}),
    });
    new GpuCluster(stack, 'train', { target: aws, accelerator: 'L4', ...props });
  });
}

const policyDoc = (json: TerraformJson, part: string): any =>
  Object.entries(json.data!.aws_iam_policy_document).find(([k]) => k.includes(part))![1];

describe('SageMaker rollouts fit the provider', () => {
  test('maximum_execution_timeout_in_seconds stays within the provider\'s 600..14400 for every rollout', () => {
    // Before: clamped to 28800, so a linear rollout of 10% every 30 minutes asked for 21600.
    const long = sagemakerRouting({ kind: 'linear', percentPerStep: 10, stepMinutes: 30 });
    expect(long.maximumExecutionTimeoutInSeconds).toBeLessThanOrEqual(MAX_EXECUTION_TIMEOUT_SECONDS);
    expect(MAX_EXECUTION_TIMEOUT_SECONDS).toBe(14400);
    for (const r of [Rollout.allAtOnce(), Rollout.canary({ percent: 50, bakeMinutes: 60 }), Rollout.blueGreen({ bakeMinutes: 60 })]) {
      const t = sagemakerRouting(r).maximumExecutionTimeoutInSeconds;
      expect(t).toBeGreaterThanOrEqual(600);
      expect(t).toBeLessThanOrEqual(14400);
    }
  });

  test('a rollout that cannot finish within the provider\'s 60-minute wait is refused; a tight one warns', () => {
    // Before: 10% every 30 minutes (300 minutes) was accepted (checkRollout allowed up to 470).
    expect(() => endpoint({ rollout: Rollout.linear({ percentPerStep: 10, stepMinutes: 30 }), rollbackAlarms: ['a'] })).toThrow(/OUT_OF_RANGE.*rollout.*60 minutes/);
    expect(() => endpoint({ rollout: Rollout.canary({ percent: 10, bakeMinutes: 60 }), rollbackAlarms: ['a'] })).toThrow(/OUT_OF_RANGE/);
    expect(() => endpoint({ rollout: Rollout.blueGreen({ bakeMinutes: 30 }) })).toThrow(/OUT_OF_RANGE/);
    const tight = endpoint({ rollout: Rollout.canary({ percent: 10, bakeMinutes: 50 }), rollbackAlarms: ['a'] });
    expect(warnings(tight.endpoint).join('\n')).toMatch(/60 minutes the AWS provider waits/);
    const fine = endpoint({ rollout: Rollout.canary({ percent: 10, bakeMinutes: 15 }), rollbackAlarms: ['a'] });
    expect(warnings(fine.endpoint)).toEqual([]);
  });

  test('a canary or linear rollout without a rollback alarm warns', () => {
    expect(warnings(endpoint({ rollout: Rollout.canary({ percent: 10 }) }).endpoint).join('\n')).toMatch(/no rollbackAlarms/);
    expect(warnings(endpoint({ rollout: Rollout.allAtOnce() }).endpoint)).toEqual([]);
  });

  test('the execution role may DescribeAlarms on exactly the rollback alarms (deployment guardrails read them)', () => {
    const { json } = endpoint({ rollout: Rollout.canary({ percent: 10 }), rollbackAlarms: ['ltv-5xx', 'ltv-p99'] });
    const st = policyDoc(json, 'execution-doc').statement.find((s: any) => s.sid === 'ReadRollbackAlarms');
    expect(st.actions).toEqual(['cloudwatch:DescribeAlarms']);
    expect(st.resources).toHaveLength(2);
    expect(st.resources[0]).toMatch(/^arn:\$\{data\.aws_partition\.[^}]+\}:cloudwatch:us-east-1:\$\{data\.aws_caller_identity\.[^}]+\}:alarm:ltv-5xx$/);
    const none = endpoint({ rollout: Rollout.allAtOnce() });
    expect(policyDoc(none.json, 'execution-doc').statement.map((s: any) => s.sid)).not.toContain('ReadRollbackAlarms');
  });
});

describe('SageMaker instance types', () => {
  test('T4 x8 (EC2 g4dn.metal) is refused on a SageMaker endpoint, naming the offered counts', () => {
    // Before: ml.g4dn.metal, which SageMaker does not offer.
    expect(() => endpoint({ accelerator: 'T4', acceleratorsPerReplica: 8 })).toThrow(/NOT_OFFERED.*T4 x8 is not offered on SageMaker.*1, 4/);
    expect((only(endpoint({ accelerator: 'T4', acceleratorsPerReplica: 4 }).json, 'aws_sagemaker_endpoint_configuration') as any)
      .production_variants[0].instance_type).toBe('ml.g4dn.12xlarge');
    expect((only(endpoint({ accelerator: 'H200', acceleratorsPerReplica: 8 }).json, 'aws_sagemaker_endpoint_configuration') as any)
      .production_variants[0].instance_type).toBe('ml.p5en.48xlarge');
  });

  test('trn1 and trn2 have local NVMe storage (no KmsKeyId)', () => {
    expect(hasLocalStorage('ml.trn1.32xlarge')).toBe(true);
    expect(hasLocalStorage('ml.trn2.48xlarge')).toBe(true);
    expect(hasLocalStorage('ml.inf2.xlarge')).toBe(false);
  });
});

describe('Terraform template escaping', () => {
  test('tfLiteral doubles ${ and %{ (a JS replacement string would have eaten one $)', () => {
    expect(tfLiteral('${HOME}/x')).toBe('$${HOME}/x');
    expect(tfLiteral('%{ if a }b%{ endif }')).toBe('%%{ if a }b%%{ endif }');
    expect(tfLiteral('cost $$5 and $1')).toBe('cost $$5 and $1');
  });

  test('pipeline argv, env and params reach Terraform escaped', () => {
    const { json } = synth((stack) => {
      const aws = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
      const c = new GpuCluster(stack, 'train', { target: aws, accelerator: 'L4' });
      new TrainingPipeline(stack, 'ltv', {
        cluster: c, params: { home: '${HOME}' },
        steps: [Step.run('a', ['echo', '${HOME}', '%{x}'], { env: { DIR: '${PWD}/out' } })],
      });
    });
    const spec = Object.values(resources(json, 'aws_s3_object')).find((o: any) => String(o.key).includes('spec-')) as any;
    // Before: "${HOME}" unescaped: Terraform reads an interpolation ("Invalid reference").
    expect(spec.content).toContain('$${HOME}');
    expect(spec.content).toContain('%%{x}');
    expect(spec.content).toContain('$${PWD}/out');
    expect(spec.content).not.toMatch(/[^$]\$\{(HOME|PWD)/);
  });

  test('ModelEndpoint env reaches Terraform escaped', () => {
    const { json } = endpoint({ env: { A: '${HOME}', B: '%{x}' } });
    const env = (only(json, 'aws_sagemaker_model') as any).primary_container.environment;
    // Before: not escaped at all.
    expect(env.A).toBe('$${HOME}');
    expect(env.B).toBe('%%{x}');
  });

  test('a token-valued image derives the ECR ARN without backslash escapes (HCL rejects \\d and \\.)', () => {
    const { text, json } = synth((stack) => {
      const aws = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
      const image = new TerraformVariable(stack, 'image', { type: 'string' });
      new ModelEndpoint(stack, 'ltv-api', { target: aws, model: 's3://ml-models/ltv/v3', image: image.stringValue, replicas: { min: 1, max: 2 } });
    });
    const doc = policyDoc(json, 'execution-doc');
    const pull = doc.statement.find((s: any) => s.sid === 'PullImage').resources[0];
    expect(pull).toContain('regex(');
    expect(pull).not.toMatch(/\\/);
    expect(text).not.toMatch(/\\\\[d.]/);
    // The same pattern, read by JS (RE2 and JS agree on this subset), captures account, region, repository.
    const m = new RegExp(ECR_IMAGE_RE2).exec(IMAGE)!;
    expect(m.slice(1)).toEqual(['123456789012', 'us-east-1', 'ltv-server']);
  });
});

describe('weekly pipelines can be watched', () => {
  const weekly = (maxAge?: Duration) => {
    let ops!: MonitoringStack;
    const out = synth((stack) => {
      const aws = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
      const c = new GpuCluster(stack, 'train', { target: aws, accelerator: 'L4' });
      const p = new TrainingPipeline(stack, 'ltv', { cluster: c, schedule: Schedule.cron('0 4 * * 1'), steps: [Step.run('a', ['true'])] });
      ops = new MonitoringStack(stack, 'ops', { target: aws, notify: ['a@example.com'] }).watch(p, maxAge ? { maxAge } : {});
    });
    return { ...out, ops };
  };
  const stale = (json: TerraformJson): any => Object.entries(resources(json, 'aws_cloudwatch_metric_alarm')).find(([k]) => k.includes('pipeline-stale'))![1];

  test('the default maxAge is CloudWatch\'s 7-day look-back (before: period + 2 h, OUT_OF_RANGE)', () => {
    const { json, ops } = weekly();
    const a = stale(json);
    expect(a.period * a.evaluation_periods).toBe(7 * 86400);
    expect(warnings(ops).join('\n')).toMatch(/looks back at most 7 days/);
  });

  test('an explicit 7 days is accepted (before: CONFLICT, not longer than the period)', () => {
    expect(() => weekly(Duration.days(7))).not.toThrow();
    expect(() => weekly(Duration.days(3))).toThrow(/CONFLICTING_PROPS/);
  });
});

describe('GpuCluster on AWS', () => {
  test('a placement group gets one Availability Zone\'s subnet (AWS refuses a cluster placement group across zones)', () => {
    const multi = only(cluster({ nodes: { min: 0, max: 2 } }).json, 'aws_autoscaling_group') as any;
    // Before: both private subnets, in two zones.
    expect(multi.placement_group).toBeDefined();
    expect(multi.vpc_zone_identifier).toHaveLength(1);
    const given = only(cluster({ nodes: { min: 0, max: 2 } }, true).json, 'aws_autoscaling_group') as any;
    expect(given.vpc_zone_identifier).toEqual(['subnet-a']);
    const single = only(cluster({ nodes: { min: 0, max: 1 } }).json, 'aws_autoscaling_group') as any;
    expect(single.placement_group).toBeUndefined();
    expect(single.vpc_zone_identifier).toHaveLength(2);
  });

  test('V100 is refused with the default (OSS-driver, Turing and newer) AMI, accepted with an explicit image', () => {
    expect(() => cluster({ accelerator: 'V100' })).toThrow(/NOT_OFFERED.*V100.*Turing/);
    expect(() => cluster({ accelerator: 'V100', machineImage: 'ami-0123456789abcdef0' })).not.toThrow();
  });

  test('hosts may not write the agent bundle or stored pipeline specs', () => {
    const doc = policyDoc(cluster().json, 'host-doc');
    const deny = doc.statement.find((s: any) => s.effect === 'Deny');
    expect(deny.actions).toEqual(expect.arrayContaining(['s3:PutObject', 's3:DeleteObject']));
    expect(deny.resources.map((r: string) => r.replace(/^\$\{[^}]+\}/, 'BUCKET'))).toEqual(['BUCKET/agent/*', 'BUCKET/pipelines/*/spec-*.json']);
  });

  test('the agent token secret can be destroyed and re-created at once (no recovery window on a fixed name)', () => {
    expect((only(cluster().json, 'aws_secretsmanager_secret') as any).recovery_window_in_days).toBe(0);
  });

  test('nodes.max may be a Terraform variable', () => {
    const { json } = synth((stack) => {
      const aws = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
      const max = new TerraformVariable(stack, 'max', { type: 'number' });
      new GpuCluster(stack, 'train', { target: aws, accelerator: 'L4', nodes: { min: 0, max: max.numberValue } });
    });
    expect((only(json, 'aws_autoscaling_group') as any).max_size).toBe('${var.max}');
  });
});

describe('CloudWatch agent on hosts', () => {
  // The agent's JSON schema (aws/amazon-cloudwatch-agent translator/config/schema.json): logs takes
  // logs_collected {files, windows_events} and metrics_collected {prometheus, emf, kubernetes, ecs, otlp};
  // prometheus takes exactly these keys. fetch-config refuses anything else.
  const LOGS_KEYS = ['logs_collected', 'metrics_collected', 'log_stream_name', 'force_flush_interval', 'credentials', 'endpoint_override', 'concurrency'];
  const LOGS_COLLECTED = ['files', 'windows_events'];
  const PROMETHEUS_KEYS = ['cluster_name', 'log_group_name', 'prometheus_config_path', 'emf_processor', 'ecs_service_discovery', 'disable_metric_extraction'];

  test('the rendered config follows the agent\'s schema: prometheus under logs.metrics_collected', () => {
    const config = JSON.parse(renderCloudWatchAgentConfig('c1').config);
    for (const k of Object.keys(config.logs)) expect(LOGS_KEYS).toContain(k);
    // Before: prometheus sat under logs.logs_collected, which the schema does not allow.
    for (const k of Object.keys(config.logs.logs_collected)) expect(LOGS_COLLECTED).toContain(k);
    const prom = config.logs.metrics_collected.prometheus;
    for (const k of Object.keys(prom)) expect(PROMETHEUS_KEYS).toContain(k);
    expect(Object.keys(config.metrics.metrics_collected)).toEqual(['nvidia_gpu']);
  });

  test('a failed metrics agent is reported, and set -e applies inside its own bash', () => {
    const script = renderBootstrap({
      clusterName: 'c1', nodeVersion: '20.19.5', nodeDistUrl: 'https://nodejs.org/dist', copyCommand: (u, d) => `cp ${u} ${d}`,
      agentScriptUri: 's3://b/a.js', agentStorageUri: 's3://b/s.js', agentStorageFile: 'storage-s3.js', tokenCommand: 'echo t', idleStopMinutes: 0, agentPort: 7070,
      preemption: 'none', hostMetrics: 'false\necho never', hostMetricsFailed: 'report-failure',
    } as Parameters<typeof renderBootstrap>[0]);
    // Before: `( set -euo pipefail ... ) || echo`, where bash ignores set -e.
    expect(script).not.toMatch(/\(\nset -euo pipefail/);
    expect(script).toMatch(/if ! bash -euo pipefail \/opt\/mlinfra\/host-metrics\.sh; then/);
    expect(script).toMatch(/\n {2}report-failure\n/);
  });

  test('watching a cluster alarms on the host-metrics-failed metric', () => {
    const { json } = synth((stack) => {
      const aws = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
      const c = new GpuCluster(stack, 'train', { target: aws, accelerator: 'L4' });
      new MonitoringStack(stack, 'ops', { target: aws, notify: ['a@example.com'] }).watch(c);
    });
    const a = Object.entries(resources(json, 'aws_cloudwatch_metric_alarm')).find(([k]) => k.includes('host-metrics-failed'))![1] as any;
    expect(a.metric_name).toBe('mlinfra_host_metrics_agent_failed');
    expect(a.namespace).toBe('MLInfra/Agent');
  });
});

describe('FeatureStore on AWS: the Athena offline store works', () => {
  const build = () => synth((stack) => {
    const aws = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
    const f = new FeatureStore(stack, 'features', { target: aws, project: 'recsys' });
    f.addFeatureView({ name: 'user_stats', entities: ['user_id'], ttl: Duration.days(1), features: [{ name: 'ltv', type: 'float' }] });
    const c = new GpuCluster(stack, 'train', { target: aws, accelerator: 'L4' });
    f.grantRead(c);
  });

  test('feature_store.yaml names a workgroup with encrypted results in the staging prefix', () => {
    const { json } = build();
    const wg = only(json, 'aws_athena_workgroup') as any;
    expect(wg.configuration.enforce_workgroup_configuration).toBe(true);
    expect(wg.configuration.result_configuration.encryption_configuration).toEqual({ encryption_option: 'SSE_KMS', kms_key_arn: expect.stringMatching(/aws_kms_key/) });
    expect(wg.configuration.result_configuration.output_location).toMatch(/\/athena-staging\/$/);
    const yaml = Object.entries(json.output ?? {}).find(([k]) => k.includes('feast-config'))![1].value as string;
    // Before: no workgroup key, and Feast refuses an Athena config without one.
    expect(yaml).toMatch(/workgroup: \$\{aws_athena_workgroup\.[A-Za-z0-9_-]+\.name\}/);
  });

  test('grantRead can run Athena queries: workgroup, bucket location, staging writes, temporary entity tables', () => {
    const { json } = build();
    const doc = Object.entries(json.data!.aws_iam_policy_document).find(([k]) => k.includes('granted'))![1] as any;
    const actions = (a: string) => doc.statement.filter((s: any) => s.actions.includes(a));
    expect(actions('athena:StartQueryExecution')[0].resources).toEqual([expect.stringMatching(/:athena:us-east-1:.*:workgroup\/\$\{aws_athena_workgroup\./)]);
    expect(actions('s3:GetBucketLocation')).toHaveLength(1);
    expect(actions('s3:PutObject')[0].resources[0]).toMatch(/\/athena-staging\/\*$/);
    expect(actions('kms:GenerateDataKey')).toHaveLength(1);
    const glue = actions('glue:CreateTable')[0];
    expect(glue.actions).toEqual(['glue:CreateTable', 'glue:DeleteTable']);
    expect(glue.resources[2]).toMatch(/:table\/[a-z0-9_]+\/feast_entity_df_\*$/);
  });
});

describe('agent metrics exist at 0 before their first event (the CloudWatch agent drops a series\' first sample)', () => {
  // A scheduler that never emits: only the metric registration is under test.
  const scheduler = Object.assign(new EventEmitter(), { stats: () => ({ queued: 0, running: 0, gpusBusy: 0, draining: false }) });

  test('jobs finished by failure class and autostops are exported at 0 from the start', async () => {
    const m = new AgentMetrics(scheduler as any, 1);
    const text = await m.registry.metrics();
    // Before: mlinfra_agent_jobs_finished_total had no series until a job finished.
    for (const c of ['exit', 'oom', 'timeout', 'preempted']) expect(text).toContain(`mlinfra_agent_jobs_finished_total{state="failed",failure_class="${c}"} 0`);
    expect(text).toContain('mlinfra_agent_jobs_finished_total{state="succeeded",failure_class="none"} 0');
    expect(text).toMatch(/^mlinfra_agent_autostop_total 0$/m);
  });

  test('a declared pipeline has its succeeded and failed series at 0 before its run ends', async () => {
    const m = new AgentMetrics(scheduler as any, 1);
    m.declarePipeline('ltv');
    expect(await m.registry.metrics()).toContain('mlinfra_pipeline_runs_total{pipeline="ltv",state="succeeded"} 0');
    m.recordPipelineRun({ pipeline: 'ltv', state: 'succeeded', runId: 'r1', endedAt: new Date().toISOString() });
    expect(await m.registry.metrics()).toContain('mlinfra_pipeline_runs_total{pipeline="ltv",state="succeeded"} 1');
  });
});

describe('jobs on AWS hosts run as an unprivileged user', () => {
  test('the start-up script creates mlinfra-job without a login shell and serves with --job-user; the token stays root-only', () => {
    const { json } = cluster();
    const script = String(Object.values((json as any).locals ?? {})[0] ?? JSON.stringify(json));
    // Before: jobs ran as root, which can read /run/mlinfra/token.
    expect(script).toMatch(/useradd --system --user-group --create-home --home-dir \/var\/lib\/mlinfra-job --shell \/usr\/sbin\/nologin mlinfra-job/);
    expect(script).toMatch(/mlinfra-agent\.js serve [^\n]*--job-user mlinfra-job/);
    expect(script).toMatch(/install -d -m 0700 \/run\/mlinfra\n/);
  });
});

describe('destroy and re-create', () => {
  test('objects Terraform writes wait for versioning, so destroy deletes all their versions', () => {
    const { json } = synth((stack) => {
      const aws = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
      const c = new GpuCluster(stack, 'train', { target: aws, accelerator: 'L4' });
      new TrainingPipeline(stack, 'ltv', { cluster: c, steps: [Step.run('a', ['true'])] });
    });
    const objects = Object.values(resources(json, 'aws_s3_object')) as any[];
    expect(objects).toHaveLength(8); // the agent, its 6 modules (S3, SQS, Auto Scaling, rollouts) and the spec
    // Before: bucket.id, so an object could be written before versioning was on: no version id
    // recorded, destroy left a noncurrent version and the bucket's destroy failed (BucketNotEmpty).
    for (const o of objects) expect(o.bucket).toMatch(/^\$\{aws_s3_bucket_versioning\.[^.]+\.bucket\}$/);
    // Data buckets are never emptied by Terraform.
    for (const b of Object.values(resources(json, 'aws_s3_bucket')) as any[]) expect(b.force_destroy).toBe(false);
  });

  test('generated secrets with fixed names have no recovery window (a re-apply within 7 days works)', () => {
    const { json } = synth((stack) => {
      const aws = new AwsTarget(stack, 'aws', { region: 'us-east-1' });
      new FeatureStore(stack, 'features', { target: aws, online: 'redis', project: 'recsys' });
      new GpuCluster(stack, 'train', { target: aws, accelerator: 'L4' });
    });
    const secrets = Object.values(resources(json, 'aws_secretsmanager_secret')) as any[];
    expect(secrets).toHaveLength(2);
    for (const s of secrets) expect(s.recovery_window_in_days).toBe(0);
  });
});

describe('examples share one AWS network', () => {
  test('only network-aws creates a VPC and a NAT address; the stacks keep their names', () => {
    // The examples' shared synth (support/examples.ts); `npm run synth` puts them in one app, which
    // validate:terraform synthesizes too.
    const stacks = EXAMPLE_NAMES.flatMap((n) => Object.entries(exampleOutput(n).stacks));
    const withType = (type: string) => [...new Set(stacks.filter(([, json]) => json.resource?.[type]).map(([id]) => id))];
    // Before: gpu-aws, features-aws, pipeline-aws, ops-aws and platform-aws each had one (with the
    // default VPC: six, above the default quota of 5 VPCs and 5 Elastic IPs per region).
    expect(withType('aws_vpc')).toEqual(['network-aws']);
    expect(withType('aws_eip')).toEqual(['network-aws']);
    const built = stacks.map(([id]) => id);
    for (const id of ['gpu-aws', 'features-aws', 'endpoint-aws', 'pipeline-aws', 'ops-aws', 'platform-aws', 'serve-aws']) expect(built).toContain(id);
  });
});
