import { DefaultTokenResolver, StringConcat, TerraformDataSource, TerraformElement, TerraformResource, TerraformStack, Tokenization } from 'cdktf';
import { IConstruct } from 'constructs';
import { PolicyContext, PolicyElement } from './types';

const RESOLVER = new DefaultTokenResolver(new StringConcat());

/** Every resource and data source of a stack as it synthesizes, with lookups by type and reference. */
export class StackPolicyContext implements PolicyContext {
  public readonly elements: readonly PolicyElement[];
  private readonly byType = new Map<string, PolicyElement[]>();
  private readonly byRef = new Map<string, PolicyElement>();
  private readonly byConstruct = new Map<IConstruct, PolicyElement>();

  constructor(public readonly stack: TerraformStack) {
    const out: PolicyElement[] = [];
    for (const c of stack.node.findAll()) {
      const el = toElement(stack, c);
      if (!el) continue;
      out.push(el);
      const list = this.byType.get(el.type) ?? [];
      list.push(el);
      this.byType.set(el.type, list);
      this.byRef.set(el.ref, el);
      this.byConstruct.set(c, el);
    }
    this.elements = out;
  }

  public elementOf(construct: IConstruct): PolicyElement | undefined {
    return this.byConstruct.get(construct);
  }

  public all(type: string): readonly PolicyElement[] {
    return this.byType.get(type) ?? [];
  }

  public resolve(value: unknown): PolicyElement | undefined {
    if (typeof value !== 'string') return undefined;
    for (const ref of referencesIn(value)) {
      const el = this.byRef.get(ref);
      if (el) return el;
    }
    return undefined;
  }

  public refersTo(value: unknown, target: PolicyElement): boolean {
    if (typeof value === 'string') return referencesIn(value).includes(target.ref);
    if (Array.isArray(value)) return value.some((v) => this.refersTo(v, target));
    if (value && typeof value === 'object') return Object.values(value).some((v) => this.refersTo(v, target));
    return false;
  }

  public referencing(type: string, attr: string, target: PolicyElement): readonly PolicyElement[] {
    return this.all(type).filter((e) => this.refersTo(e.attrs[attr], target));
  }
}

/** `type.name` and `data.type.name` of every `${...}` reference in a string (`$${` is an escape, not one). */
export function referencesIn(value: string): string[] {
  const out: string[] = [];
  for (let i = value.indexOf('${'); i >= 0; i = value.indexOf('${', i + 2)) {
    if (i > 0 && value[i - 1] === '$') continue;
    let depth = 0;
    let j = i + 1;
    for (; j < value.length; j++) {
      if (value[j] === '{') depth++;
      else if (value[j] === '}' && --depth === 0) break;
    }
    const body = value.slice(i + 2, j);
    for (const m of body.matchAll(/(?<![\w.-])((?:data\.)?[a-z][a-z0-9_]*\.[A-Za-z0-9_-]+)/g)) out.push(m[1]);
  }
  return out;
}

function toElement(stack: TerraformStack, c: IConstruct): PolicyElement | undefined {
  if (!TerraformResource.isTerraformResource(c) && !TerraformDataSource.isTerraformDataSource(c)) return undefined;
  if (TerraformStack.of(c) !== stack) return undefined;
  const el = c as TerraformElement & { terraformResourceType: string };
  const kind = TerraformResource.isTerraformResource(c) ? 'resource' : 'data';
  const json = Tokenization.resolve(el.toTerraform(), { scope: stack, preparing: false, resolver: RESOLVER }) as Record<string, Record<string, Record<string, Record<string, unknown>>>>;
  const byType = json[kind] ?? {};
  const type = el.terraformResourceType;
  const [logicalId, attrs] = Object.entries(byType[type] ?? {})[0] ?? [el.friendlyUniqueId, {}];
  const clean = { ...attrs };
  delete clean['//'];
  return { construct: el, kind, type, logicalId, ref: kind === 'data' ? `data.${type}.${logicalId}` : `${type}.${logicalId}`, path: c.node.path, attrs: clean };
}
