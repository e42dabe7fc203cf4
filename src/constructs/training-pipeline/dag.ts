/** Checks on a pipeline's DAG and settings that need no construct. */
import type { PipelineStepSpec } from '../../contracts/pipeline-spec';

/** The first cycle found, as step names in dependency order, closing on its first step; undefined for a DAG. */
export function findCycle(steps: readonly PipelineStepSpec[]): string[] | undefined {
  const deps = new Map(steps.map((s) => [s.name, s.after]));
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (n: string): string[] | undefined => {
    if (state.get(n) === 'done') return undefined;
    if (state.get(n) === 'open') return [...path.slice(path.indexOf(n)), n];
    state.set(n, 'open');
    path.push(n);
    for (const d of deps.get(n) ?? []) {
      const c = visit(d);
      if (c) return c;
    }
    path.pop();
    state.set(n, 'done');
    return undefined;
  };
  for (const s of steps) {
    const c = visit(s.name);
    // Walked along `after` (step -> its dependency); reversed it reads in run order.
    if (c) return c.reverse();
  }
  return undefined;
}

export function validTimezone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return /^[A-Za-z][A-Za-z0-9_+\-/]*$/.test(tz);
  } catch {
    return false;
  }
}
