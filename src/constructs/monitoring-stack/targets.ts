/**
 * MonitoringStack's dispatch table: per target, its builder (aws.ts, gcp.ts, kubernetes.ts, loaded
 * with their provider on first use), how it names its place, and its rules on what it watches.
 */
import { Token } from 'cdktf';
import { Construct } from 'constructs';
import { TargetKind } from '../../core/accelerators';
import { Errors } from '../../core/errors';
import { AwsTarget, GcpTarget, KubernetesTarget, Target } from '../../core/targets';
import type { IGpuCluster } from '../gpu-cluster';
import type { KubernetesMonitoringOptions } from './kubernetes';
import { MonitoringBackend, NotifyPlan } from './plan';

export type BuiltMonitoring = MonitoringBackend & { readonly dashboard: string; readonly resources: unknown };

export interface MonitoringTarget {
  build(m: Construct, t: Target, notify: NotifyPlan, kubernetes: KubernetesMonitoringOptions | undefined): BuiltMonitoring;
  /** The monitor's place, for messages: `aws us-east-1`, `gcp project p`. */
  describe(mine: Target): string;
  /** What makes `other` (a target of the same kind, not the same object) another place, or undefined. */
  differs(mine: Target, other: Target): unknown;
  /** This target's rules on a watched cluster. */
  checkCluster?(m: Construct, mine: Target, c: IGpuCluster): void;
}

/** Two values that are both known and not equal (references are left to the provider). */
const known = (a: string, b: string) => !Token.isUnresolved(a) && !Token.isUnresolved(b) && a !== b;

function noKubernetesOptions(m: Construct, kind: TargetKind, options: KubernetesMonitoringOptions | undefined): void {
  if (options !== undefined) throw Errors.conflict(m, 'kubernetes', Object.keys(options), 'kubernetes targets only', `does not apply to ${kind}`);
}

export const MONITORING_TARGETS: Readonly<Record<TargetKind, MonitoringTarget>> = {
  aws: {
    build: (m, t, notify, k8s) => {
      noKubernetesOptions(m, 'aws', k8s);
      return (require('./aws') as typeof import('./aws')).buildAwsMonitoring(m, t as AwsTarget, notify);
    },
    describe: (mine) => `aws ${(mine as AwsTarget).region}`,
    differs: (mine, other) => (known((other as AwsTarget).region, (mine as AwsTarget).region) ? (other as AwsTarget).region : undefined),
  },
  gcp: {
    build: (m, t, notify, k8s) => {
      noKubernetesOptions(m, 'gcp', k8s);
      return (require('./gcp') as typeof import('./gcp')).buildGcpMonitoring(m, t as GcpTarget, notify);
    },
    describe: (mine) => `gcp project ${(mine as GcpTarget).project}`,
    differs: (mine, other) => (known((other as GcpTarget).project, (mine as GcpTarget).project) ? (other as GcpTarget).project : undefined),
  },
  kubernetes: {
    build: (m, t, notify, k8s) => {
      const built = (require('./kubernetes') as typeof import('./kubernetes')).buildKubernetesMonitoring(m, t as KubernetesTarget, notify, k8s ?? {});
      const d = built.resources.dashboardConfigMap.metadata;
      return { ...built, dashboard: built.dashboard ?? `${d.namespace}/${d.name}` };
    },
    describe: () => 'kubernetes',
    differs: (mine, other) => ((other as KubernetesTarget).provider !== (mine as KubernetesTarget).provider ? 'another kubernetes provider (cluster)' : undefined),
    // Prometheus mounts the cluster's token Secret, and Secrets do not cross namespaces.
    checkCluster: (m, mine, c) => {
      const ns = (c.target as KubernetesTarget).namespace;
      const own = (mine as KubernetesTarget).namespace;
      if (c.target !== mine && !(Token.isUnresolved(ns) && Token.isUnresolved(own)) && ns !== own) {
        throw Errors.conflict(m, 'watch(cluster).target', ns,
          `a cluster in namespace ${own} (Prometheus mounts the cluster's token Secret, and Secrets do not cross namespaces)`, 'is in another namespace');
      }
    },
  },
};
