// Load-on-first-use bindings: a program that uses one target never loads another target's provider
// package or backend (each provider costs hundreds of MB installed and ~100 ms to load).
import { Errors } from './errors';

/** The provider packages a target needs, with the ranges this library is tested against (package.json peers). */
export const PROVIDER_PACKAGES = {
  aws: { pkg: '@cdktf/provider-aws', range: '^21.22.1' },
  gcp: { pkg: '@cdktf/provider-google', range: '^16.12.1' },
  kubernetes: { pkg: '@cdktf/provider-kubernetes', range: '^12.1.1' },
  random: { pkg: '@cdktf/provider-random', range: '^12.0.1' },
  helm: { pkg: '@cdktf/provider-helm', range: '^12.1.2' },
} as const;
export type ProviderPackage = keyof typeof PROVIDER_PACKAGES;

function isMissing(err: unknown, pkg: string): boolean {
  const e = err as { code?: string; message?: string };
  return e?.code === 'MODULE_NOT_FOUND' && typeof e.message === 'string' && e.message.includes(`'${pkg}/`);
}

/** Runs `load` (a `require` of a provider submodule); a missing provider package becomes MISSING_PACKAGE. */
export function requireProvider<T>(which: ProviderPackage, load: () => T): T {
  try {
    return load();
  } catch (err) {
    const { pkg, range } = PROVIDER_PACKAGES[which];
    if (isMissing(err, pkg)) throw Errors.missingPackage('cdktf-mlinfra', `a ${which === 'random' ? 'generated secret' : which === 'helm' ? "kubernetes target with kueueAndJobSet 'install'" : `${which} target`}`, pkg, range);
    throw err;
  }
}

/** A module loaded the first time the returned function is called. */
export function lazyModule<T>(load: () => T): () => T {
  let mod: T | undefined;
  return () => (mod ??= load());
}

/** A function whose module is loaded on its first call. */
export function lazyFunction<F extends (...args: never[]) => unknown>(load: () => F): F {
  let fn: F | undefined;
  return ((...args: Parameters<F>) => (fn ??= load())(...args)) as F;
}

/**
 * A class whose module is loaded on first `new`, static access or `instanceof`. Call sites keep
 * `new X(...)` unchanged; instances are instances of the real class.
 */
export function lazyClass<C extends abstract new (...args: never[]) => unknown>(load: () => C): C {
  let real: C | undefined;
  type Ctor = new (...a: unknown[]) => object;
  const get = (): Ctor => (real ??= load()) as unknown as Ctor;
  const proxy: C = new Proxy(function lazy() { /* stands in until loaded */ } as unknown as C, {
    // `new X()` passes the proxy as new.target: build the real class; a subclass keeps its own new.target.
    construct: (_t, args, newTarget) => Reflect.construct(get(), args, newTarget === proxy ? get() : newTarget),
    get: (_t, prop) => Reflect.get(get(), prop),
    has: (_t, prop) => Reflect.has(get(), prop),
  });
  return proxy;
}
