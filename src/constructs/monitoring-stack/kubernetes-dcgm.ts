/**
 * The DCGM exporter DaemonSet of a MonitoringStack on Kubernetes: GPU metrics per node, mapped to the
 * pods using each GPU (kubelet pod-resources socket). Split from kubernetes.ts to keep it short.
 */
import { Construct } from 'constructs';
import { DaemonSetV1 } from '@cdktf/provider-kubernetes/lib/daemon-set-v1';
import { KubernetesTarget } from '../../core/targets';

export const DCGM_EXPORTER_IMAGE = 'nvcr.io/nvidia/k8s/dcgm-exporter:3.3.9-3.6.1-ubuntu22.04';

export interface DcgmOptions {
  readonly dcgmExporterImage?: string;
  readonly dcgmNodeSelector?: Record<string, string>;
}

export function buildDcgmExporter(scope: Construct, target: KubernetesTarget, o: DcgmOptions,
  meta: (n: string, component: string) => { name: string; namespace: string; labels: Record<string, string> }, name: string,
  dcgmLabels: Record<string, string>): DaemonSetV1 {
  const provider = target.provider;
  const gke = target.gpuNodeLabels === 'gke';
  const nodeSelector = o.dcgmNodeSelector ? { ...o.dcgmNodeSelector }
    : target.gpuNodeLabels === 'nvidia-gfd' ? { 'nvidia.com/gpu.present': 'true' } : undefined;
  // GKE (COS) installs the driver on the host under /home/kubernetes/bin/nvidia, and NVML cannot
  // initialise without it and a privileged container. Source: Google's reference exporter for
  // Managed Prometheus, GoogleCloudPlatform/prometheus-engine examples/nvidia-dcgm/exporter.yaml
  // (hostPath mounted at /usr/local/nvidia, privileged, LD_LIBRARY_PATH=/usr/local/nvidia/lib64).
  return new DaemonSetV1(scope, 'dcgm-exporter', {
    provider, metadata: meta(`${name}-dcgm-exporter`, 'dcgm-exporter'),
    spec: {
      selector: { matchLabels: { ...dcgmLabels } },
      template: {
        metadata: { labels: { ...dcgmLabels } },
        spec: {
          automountServiceAccountToken: false, enableServiceLinks: false,
          nodeSelector,
          affinity: gke && !o.dcgmNodeSelector ? {
            nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerm: [{ matchExpressions: [{ key: 'cloud.google.com/gke-accelerator', operator: 'Exists' }] }] } },
          } : undefined,
          toleration: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
          container: [{
            name: 'dcgm-exporter', image: o.dcgmExporterImage ?? DCGM_EXPORTER_IMAGE,
            env: [
              { name: 'DCGM_EXPORTER_KUBERNETES', value: 'true' }, { name: 'DCGM_EXPORTER_LISTEN', value: ':9400' }, { name: 'NVIDIA_VISIBLE_DEVICES', value: 'all' },
              ...(gke ? [{ name: 'LD_LIBRARY_PATH', value: '/usr/local/nvidia/lib64' }] : []),
            ],
            port: [{ name: 'metrics', containerPort: 9400, protocol: 'TCP' }],
            resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '500m', memory: '512Mi' } },
            // Root to read the kubelet's pod-resources socket; elsewhere no added capabilities (SYS_ADMIN is
            // only for profiling fields). Read-only root: DCGM writes its host engine files under /tmp.
            securityContext: gke
              ? { privileged: true, runAsNonRoot: false, runAsUser: '0', readOnlyRootFilesystem: true }
              : { runAsNonRoot: false, runAsUser: '0', allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
            volumeMount: [
              { name: 'pod-resources', mountPath: '/var/lib/kubelet/pod-resources', readOnly: true },
              { name: 'tmp', mountPath: '/tmp' },
              ...(gke ? [{ name: 'nvidia-driver', mountPath: '/usr/local/nvidia', readOnly: true }] : []),
            ],
          }],
          volume: [
            { name: 'pod-resources', hostPath: { path: '/var/lib/kubelet/pod-resources', type: 'Directory' } },
            { name: 'tmp', emptyDir: { sizeLimit: '256Mi' } },
            ...(gke ? [{ name: 'nvidia-driver', hostPath: { path: '/home/kubernetes/bin/nvidia', type: 'Directory' } }] : []),
          ],
        },
      },
    },
  });
}
