/**
 * Checks objects against a CRD version's structural schema (test/fixtures/crds: the openAPIV3Schema
 * of the pinned release, descriptions dropped), as the API server does on create with strict field
 * validation: unknown fields, types, enums, patterns, sizes and required fields. It does not run the
 * CEL rules (x-kubernetes-validations): tests encode those they rely on, each citing its rule.
 */
import { readFileSync } from 'fs';
import { join } from 'path';

export interface CrdFixture {
  readonly source: string;
  readonly group: string;
  readonly kind: string;
  readonly scope: 'Namespaced' | 'Cluster';
  readonly version: string;
  readonly served: boolean;
  readonly storage: boolean;
  readonly schema: Schema;
}
type Schema = Record<string, any>;

export function loadCrd(file: string): CrdFixture {
  return JSON.parse(readFileSync(join(__dirname, 'fixtures', 'crds', file), 'utf8')) as CrdFixture;
}

/** Errors of `value` against `crd` (empty when valid), one line each with the field path. */
export function crdErrors(crd: CrdFixture, value: Record<string, any>): string[] {
  const errors: string[] = [];
  if (value.apiVersion !== `${crd.group}/${crd.version}`) errors.push(`apiVersion: ${value.apiVersion} is not ${crd.group}/${crd.version}`);
  if (value.kind !== crd.kind) errors.push(`kind: ${value.kind} is not ${crd.kind}`);
  if (crd.scope === 'Cluster' && value.metadata?.namespace !== undefined) errors.push('metadata.namespace: set on a cluster-scoped kind');
  if (crd.scope === 'Namespaced' && !value.metadata?.namespace) errors.push('metadata.namespace: missing on a namespaced kind');
  check(value, crd.schema, '', errors);
  return errors;
}

function typeOf(v: unknown): string {
  if (Array.isArray(v)) return 'array';
  if (v === null) return 'null';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function check(v: unknown, s: Schema, path: string, errors: string[]): void {
  const at = path || '<root>';
  if (s['x-kubernetes-int-or-string']) {
    const t = typeOf(v);
    if (t !== 'integer' && t !== 'string') { errors.push(`${at}: ${t}, not an integer or string`); return; }
    if (t === 'string' && s.pattern && !new RegExp(s.pattern).test(v as string)) errors.push(`${at}: ${JSON.stringify(v)} does not match ${s.pattern}`);
    return;
  }
  if (s.anyOf && !s.type) {
    const ok = (s.anyOf as Schema[]).some((alt) => { const e: string[] = []; check(v, alt, path, e); return e.length === 0; });
    if (!ok) errors.push(`${at}: matches none of anyOf`);
    return;
  }
  const t = typeOf(v);
  if (s.type && !(t === s.type || (s.type === 'number' && t === 'integer'))) { errors.push(`${at}: ${t}, schema says ${s.type}`); return; }
  if (s.enum && !(s.enum as unknown[]).includes(v)) errors.push(`${at}: ${JSON.stringify(v)} not in ${JSON.stringify(s.enum)}`);
  if (t === 'string') {
    const str = v as string;
    if (s.pattern && !new RegExp(s.pattern).test(str)) errors.push(`${at}: ${JSON.stringify(str)} does not match ${s.pattern}`);
    if (s.maxLength !== undefined && str.length > s.maxLength) errors.push(`${at}: longer than ${s.maxLength}`);
    if (s.minLength !== undefined && str.length < s.minLength) errors.push(`${at}: shorter than ${s.minLength}`);
  }
  if (t === 'array') {
    const arr = v as unknown[];
    if (s.maxItems !== undefined && arr.length > s.maxItems) errors.push(`${at}: more than ${s.maxItems} items`);
    if (s.minItems !== undefined && arr.length < s.minItems) errors.push(`${at}: fewer than ${s.minItems} items`);
    if (s.items) arr.forEach((item, i) => check(item, s.items, `${path}[${i}]`, errors));
    const keys = s['x-kubernetes-list-map-keys'] as string[] | undefined;
    if (keys) {
      const seen = new Set(arr.map((item: any) => keys.map((k) => item?.[k]).join('\u0000')));
      if (seen.size !== arr.length) errors.push(`${at}: duplicate list-map keys ${keys.join(',')}`);
    }
  }
  if (t === 'object') {
    const obj = v as Record<string, unknown>;
    for (const r of (s.required ?? []) as string[]) if (!(r in obj)) errors.push(`${path ? `${path}.` : ''}${r}: required`);
    if (s.maxProperties !== undefined && Object.keys(obj).length > s.maxProperties) errors.push(`${at}: more than ${s.maxProperties} properties`);
    const props = s.properties as Record<string, Schema> | undefined;
    for (const [k, child] of Object.entries(obj)) {
      const p = `${path ? `${path}.` : ''}${k}`;
      if (props?.[k]) check(child, props[k], p, errors);
      else if (s.additionalProperties && typeof s.additionalProperties === 'object') check(child, s.additionalProperties, p, errors);
      else if (props && !s['x-kubernetes-preserve-unknown-fields']) errors.push(`${p}: unknown field`);
    }
  }
}
