/** Finding our constructs in any construct tree, shared by the cost report and the picture. */
import { TerraformElement, TerraformStack, Tokenization, DefaultTokenResolver, StringConcat } from 'cdktf';
import { IConstruct } from 'constructs';
import { AwsTarget, GcpTarget, KubernetesTarget } from '../../core/targets';
import { FeatureStore } from '../../constructs/feature-store';
import { GpuCluster } from '../../constructs/gpu-cluster';
import { ModelEndpoint } from '../../constructs/model-endpoint';
import { MonitoringStack } from '../../constructs/monitoring-stack';
import { TrainingPipeline } from '../../constructs/training-pipeline';

export type OurKind = 'GpuCluster' | 'FeatureStore' | 'ModelEndpoint' | 'TrainingPipeline' | 'MonitoringStack' | 'AwsTarget' | 'GcpTarget' | 'KubernetesTarget';

/** The class name of one of our constructs or targets (instanceof, so subclasses count), else undefined. */
export function ourKind(c: IConstruct): OurKind | undefined {
  // An imported cluster (GpuCluster.fromGpuClusterAttributes) is drawn as one, and priced at zero here.
  if (c instanceof GpuCluster || (c as { watchKind?: string }).watchKind === 'gpu-cluster') return 'GpuCluster';
  if (c instanceof FeatureStore) return 'FeatureStore';
  if (c instanceof ModelEndpoint) return 'ModelEndpoint';
  if (c instanceof TrainingPipeline) return 'TrainingPipeline';
  if (c instanceof MonitoringStack) return 'MonitoringStack';
  if (c instanceof AwsTarget) return 'AwsTarget';
  if (c instanceof GcpTarget) return 'GcpTarget';
  if (c instanceof KubernetesTarget) return 'KubernetesTarget';
  return undefined;
}

export function isTargetKind(k: OurKind | undefined): boolean {
  return k === 'AwsTarget' || k === 'GcpTarget' || k === 'KubernetesTarget';
}

/** Our constructs under `scope` (not inside other stacks), in tree order. */
export function ourConstructs(scope: IConstruct): IConstruct[] {
  const stack = TerraformStack.of(scope);
  return scope.node.findAll().filter((c) => ourKind(c) !== undefined && TerraformStack.of(c) === stack);
}

/** The nearest of our constructs at or above `c` (inside its stack), if any. */
export function ownerOf(c: IConstruct): IConstruct | undefined {
  for (let x: IConstruct | undefined = c; x && !TerraformStack.isStack(x); x = x.node.scope) {
    if (ourKind(x)) return x;
  }
  return undefined;
}

/** Terraform resources and data sources of a stack, each with its JSON type and logical id. */
export function elementsOf(stack: TerraformStack): { el: TerraformElement; type: string; data: boolean; logicalId: string }[] {
  const out: { el: TerraformElement; type: string; data: boolean; logicalId: string }[] = [];
  for (const c of stack.node.findAll()) {
    if (!TerraformElement.isTerraformElement(c) || TerraformStack.of(c) !== stack) continue;
    const type = (c as unknown as { terraformResourceType?: string }).terraformResourceType;
    if (typeof type !== 'string') continue;
    const tf = c.toTerraform() as { resource?: object; data?: object };
    if (!tf.resource && !tf.data) continue;
    out.push({ el: c, type, data: !tf.resource, logicalId: stack.getLogicalId(c) });
  }
  return out;
}

/** An element's configuration as it synthesizes (references as `${...}` strings). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function configOf(el: TerraformElement): Record<string, any> {
  const tf = Tokenization.resolve(el.toTerraform(), { scope: el, resolver: new DefaultTokenResolver(new StringConcat()), preparing: false }) as Record<string, Record<string, Record<string, Record<string, unknown>>>>;
  const block = tf.resource ?? tf.data ?? {};
  const byId = Object.values(block)[0] ?? {};
  return Object.values(byId)[0] ?? {};
}
