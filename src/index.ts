// The public API: constructs, targets, their props, helpers and errors. Internals stay unexported.
// Backends and provider packages load when a program first uses their target (core/lazy.ts).

// Targets
export {
  AwsTarget, AwsTargetProps, AwsNetworkAttributes, AwsCreatedNetwork,
  GcpTarget, GcpTargetProps, GcpNetworkAttributes, GcpCreatedNetwork,
  KubernetesTarget, KubernetesTargetProps, GpuNodeLabelScheme, GcpPrivateServiceAccess,
  Target,
} from './core/targets';

// Building blocks
export { AcceleratorName, ACCELERATOR_NAMES, TargetKind, TARGET_KINDS } from './core/accelerators';
export { Duration } from './core/duration';
export { MlInfraError, MlInfraErrorCode, MlInfraErrorDetails } from './core/errors';
export { IGrantable, Grant, GrantPrincipal, AwsPrincipal, GcpPrincipal, KubernetesPrincipal, AwsPolicyStatement } from './core/grants';
export type { HostGroup, AwsHostGroup, GcpHostGroup, KubernetesHostGroup, StoreObjectOptions, StoredObject } from './contracts/host-group';
export type { IWatchable, WatchKind } from './contracts/watchable';
export { IModelArtifact, IModelRegistry, isModelRegistry, ModelArtifact, ModelUriScheme } from './core/model';
export { SecretRef } from './core/secrets';
export { ContainerImage, ContainerImageSource, FromRegistryOptions, EcrImageOptions, ArtifactRegistryImageOptions, SUPPORTED_UPSTREAMS } from './core/container-image';
export { Notify, NotifyDestination, NotifyKind, NotifySecret, NotifySecretRef, SlackOptions, PagerDutyOptions, WebhookOptions } from './core/notify';

// Constructs
export { GpuCluster, GpuClusterAttributes, GpuClusterProps, IGpuCluster, NodeRange } from './constructs/gpu-cluster';
export type { AwsGpuClusterResources } from './constructs/gpu-cluster/aws';
export type { GcpGpuClusterResources } from './constructs/gpu-cluster/gcp';
export type { KubernetesGpuClusterResources } from './constructs/gpu-cluster/kubernetes';
export type { KubernetesClusterOptions, KubernetesKueueOptions } from './constructs/gpu-cluster/kubernetes-options';
export { DEFAULT_JOB_IMAGE } from './constructs/gpu-cluster/kubernetes-options';
export { KUEUE_VERSION, JOBSET_VERSION } from './constructs/gpu-cluster/kueue';
export {
  FeatureStore, FeatureStoreProps, IFeatureStore, REDIS_PASSWORD_ENV,
  EntitySpec, FEATURE_TYPES, FeatureSpec, FeatureType, FeatureView, FeatureViewOptions, FeatureViewSource, OnlineStoreKind, ScalarFeatureType,
} from './constructs/feature-store';
export type { AwsFeatureStoreResources } from './constructs/feature-store/aws';
export type { GcpFeatureStoreResources } from './constructs/feature-store/gcp';
export type { KubernetesFeatureStoreResources } from './constructs/feature-store/kubernetes';
export {
  ModelEndpoint, ModelEndpointProps, IModelEndpoint, Rollout, RolloutKind, RolloutSpec, ReplicaRange, PreviousVersion,
  Color, EndpointMetrics, MetricRef,
  AwsModelEndpointResources, GcpModelEndpointResources, KubernetesModelEndpointResources,
} from './constructs/model-endpoint';
export {
  TrainingPipeline, TrainingPipelineProps, Step, StepDefinition, RunStepOptions, DeployIfBetterOptions, Schedule, ScheduleKind,
  AwsTrainingPipelineResources, GcpTrainingPipelineResources, KubernetesTrainingPipelineResources,
} from './constructs/training-pipeline';
export {
  MonitoringStack, MonitoringStackProps, ClusterWatchOptions, PipelineWatchOptions, EndpointWatchOptions, SmtpSettings, IWatchablePipeline,
  AwsMonitoringResources, GcpMonitoringResources, KubernetesMonitoringResources,
} from './constructs/monitoring-stack';
export type { AwsNotifyDeliveryResources } from './constructs/monitoring-stack/aws-notify';

// Compositions, policy checks, cost report and picture
export { MlPlatformStack, MlPlatformStackProps, TargetFactory } from './stacks';
// From the modules, not the barrel: the rules load when a pack is first used.
export { Policy, PolicyAspect, PolicyOptions, PolicyReporter } from './aspects/policy/policy';
export { PolicyPack } from './aspects/policy/pack';
export { nonCompliant } from './aspects/policy/types';
export type { PolicyRule, PolicyFinding, PolicyLevel, CheckResult, NonCompliant, PolicyElement, PolicyContext, PolicySuppression } from './aspects/policy/types';
export { costReport, formatCostReport, formatCostSummary, writeCostReport, CostReport, CostReportOptions, ConstructCost, CostLine, MonthlyUsd } from './aspects/cost';
export { stackGraph, renderDot, writePicture, StackGraph, GraphNode, GraphEdge, EdgeKind } from './aspects/picture';
