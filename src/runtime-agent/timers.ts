/** Node timers hold at most 2^31-1 ms (~24.8 days); a longer delay fires after 1 ms. */
const MAX_DELAY_MS = 2 ** 31 - 1;

export interface LongTimer {
  clear(): void;
}

/**
 * setTimeout for any delay: waits in chunks the runtime can hold. Unref'd: a pending timer never
 * keeps the agent alive.
 */
export function setLongTimeout(fn: () => void, delayMs: number): LongTimer {
  const due = Date.now() + Math.max(0, delayMs);
  let t: NodeJS.Timeout | undefined;
  let cleared = false;
  const wait = (ms: number): void => {
    t = setTimeout(arm, Math.min(ms, MAX_DELAY_MS));
    t.unref();
  };
  const arm = (): void => {
    if (cleared) return;
    const left = due - Date.now();
    if (left <= 0) fn();
    else wait(left);
  };
  wait(Math.max(0, delayMs));
  return {
    clear() {
      cleared = true;
      clearTimeout(t);
    },
  };
}
