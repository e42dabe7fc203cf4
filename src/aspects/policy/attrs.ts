/** Readers for synthesized attributes: blocks render as an object or a list of one, booleans sometimes as strings. */

export type Attrs = Record<string, unknown>;

/** A nested block: the object, or the first of a list. */
export function block(value: unknown): Attrs | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  return v && typeof v === 'object' ? (v as Attrs) : undefined;
}

/** A repeated block or list attribute as a list (absent = empty). */
export function blocks(value: unknown): Attrs[] {
  if (value === undefined || value === null) return [];
  const list = Array.isArray(value) ? value : [value];
  return list.filter((v): v is Attrs => !!v && typeof v === 'object');
}

/** A list of strings (a single string counts as a list of one). */
export function strings(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

export function isTrue(value: unknown): boolean {
  return value === true || value === 'true';
}

export function isFalse(value: unknown): boolean {
  return value === false || value === 'false';
}

/** An unresolved Terraform expression: its value is only known at apply time, so treat it as set. */
export function isRef(value: unknown): value is string {
  return typeof value === 'string' && /(^|[^$])\$\{/.test(value);
}

/** Set to something: a non-empty literal or a reference. */
export function isSet(value: unknown): boolean {
  return value !== undefined && value !== null && value !== '';
}

/** Reads `a.b.c` through nested blocks. */
export function dig(attrs: Attrs | undefined, path: string): unknown {
  let cur: unknown = attrs;
  for (const key of path.split('.')) {
    const b = block(cur);
    if (!b) return undefined;
    cur = b[key];
  }
  return cur;
}

export const OPEN_CIDRS: readonly string[] = ['0.0.0.0/0', '::/0'];
