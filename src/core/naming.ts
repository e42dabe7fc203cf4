import { IConstruct } from 'constructs';
import { createHash } from 'crypto';

/** A short, stable hash of text: unique names that do not change between synths. */
export function shortHash(text: string, length = 8): string {
  return createHash('sha256').update(text).digest('hex').slice(0, length);
}

/**
 * A cloud resource name for a construct: lower-case [a-z0-9-], starting with a letter, at most
 * `maxLength` characters, ending in a hash of the construct path (and suffix) so that two stacks
 * or two constructs with the same id never collide.
 */
export function resourceName(scope: IConstruct, opts: { maxLength?: number; suffix?: string } = {}): string {
  const maxLength = opts.maxLength ?? 63;
  const ids = scope.node.scopes.slice(1).map((s) => s.node.id);
  if (opts.suffix) ids.push(opts.suffix);
  const hash = shortHash(ids.join('/'));
  const head = slug(ids.join('-')).slice(0, Math.max(1, maxLength - hash.length - 1)).replace(/-+$/, '');
  return `${head}-${hash}`;
}

/** Lower-case [a-z0-9-], collapsed dashes, leading letter. */
export function slug(text: string): string {
  const s = text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');
  return /^[a-z]/.test(s) ? s : `x-${s}`;
}

/** Fits a name into `max` characters, keeping it unique with a hash of the whole name (GCP ids are short). */
export function fitName(name: string, max: number): string {
  if (name.length <= max) return name;
  return `${name.slice(0, max - 9).replace(/-+$/, '')}-${shortHash(name)}`;
}
