import { IAspect, TerraformProvider, TerraformResource } from 'cdktf';
import { IConstruct } from 'constructs';

/** Tags every cdktf-mlinfra resource carries, before the user's own. */
export const DEFAULT_TAGS: Readonly<Record<string, string>> = { 'managed-by': 'cdktf-mlinfra' };

/**
 * Applies tags (AWS) or labels (GCP) to resources that use an adopted provider, where we may not
 * set the provider's default tags. Resources that take neither are left alone.
 */
export class ProviderTagsAspect implements IAspect {
  constructor(
    private readonly provider: TerraformProvider,
    private readonly attribute: 'tags' | 'labels',
    private readonly values: Record<string, string>,
  ) {}

  public visit(node: IConstruct): void {
    if (!(node instanceof TerraformResource) || node.provider !== this.provider) return;
    const r = node as unknown as Record<string, unknown>;
    if (!(this.attribute in node)) return;
    const inputKey = `${this.attribute}Input`;
    const existing = (r[inputKey] as Record<string, string> | undefined) ?? {};
    r[this.attribute] = { ...this.values, ...existing };
  }
}
