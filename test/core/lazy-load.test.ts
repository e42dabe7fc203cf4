// A program that uses one target loads no other target's provider package or backend, and a missing
// provider package or a second copy of constructs is a clear error naming the fix.
import { execFileSync } from 'child_process';
import { join } from 'path';
import { Construct } from 'constructs';
import { App, TerraformStack } from 'cdktf';
import { KubernetesTarget, MlInfraError } from '../../src';
import { lazyClass } from '../../src/core/lazy';
import { checkConstructsVersion } from '../../src/core/compat';

const root = join(__dirname, '..', '..');

/** Runs `body` in a fresh node process with src/index.ts loaded as `m`; returns its JSON output. */
function child(body: string, preamble = ''): any {
  const code = `${preamble}
    const m = require(${JSON.stringify(join(root, 'src', 'index.ts'))});
    const { App, TerraformStack } = require('cdktf');
    const out = (x) => process.stdout.write(JSON.stringify(x));
    const providers = () => [...new Set(Object.keys(require.cache)
      .map((f) => /node_modules[\\\\/]@cdktf[\\\\/](provider-[a-z]+)/.exec(f)?.[1]).filter(Boolean))].sort();
    const backends = () => Object.keys(require.cache).filter((f) => /src[\\\\/]constructs[\\\\/][a-z-]+[\\\\/](aws|gcp|kubernetes)\\.ts$/.test(f))
      .map((f) => f.split(/[\\\\/]/).slice(-2).join('/')).sort();
    ${body}`;
  const stdout = execFileSync(process.execPath, ['-r', join(root, 'test', 'support', 'ts-register.js'), '-e', code], {
    cwd: root, env: { ...process.env, CHECKPOINT_DISABLE: '1' }, encoding: 'utf8',
  });
  return JSON.parse(stdout);
}

describe('load on first use', () => {
  it('loads no provider package and no backend for require() alone', () => {
    expect(child('out({ providers: providers(), backends: backends() })')).toEqual({ providers: [], backends: [] });
  });

  it('loads no policy rule and no Graphviz WASM until a policy pack or a picture is used', () => {
    const r = child(`
      const rules = () => Object.keys(require.cache).filter((f) => /aspects[\\\\/]policy[\\\\/]rules[\\\\/]/.test(f)).length;
      const viz = () => Object.keys(require.cache).some((f) => /@viz-js/.test(f));
      const atRequire = { rules: rules(), viz: viz() };
      const stack = new TerraformStack(new App(), 's');
      new m.KubernetesTarget(stack, 'k8s', { namespace: 'ml' });
      m.Policy.apply(stack);
      out({ atRequire, afterPolicy: { rules: rules(), viz: viz() } });`);
    expect(r.atRequire).toEqual({ rules: 0, viz: false });
    expect(r.afterPolicy.rules).toBeGreaterThan(20);
    expect(r.afterPolicy.viz).toBe(false);
  });

  it('a Kubernetes-only program loads only the kubernetes (and random) providers and kubernetes backends', () => {
    const r = child(`
      const app = new App({ outdir: require('os').tmpdir() + '/mlinfra-lazy-' + process.pid });
      const stack = new TerraformStack(app, 'k8s');
      const target = new m.KubernetesTarget(stack, 'k8s', { namespace: 'ml' });
      new m.GpuCluster(stack, 'train', { target, accelerator: 'L4', nodes: { min: 0, max: 2 } });
      app.synth();
      out({ providers: providers(), backends: backends() });`);
    expect(r.providers).not.toContain('provider-aws');
    expect(r.providers).not.toContain('provider-google');
    expect(r.providers).toContain('provider-kubernetes');
    expect(r.backends).toEqual(['gpu-cluster/kubernetes.ts']);
  });

  it('fails with MISSING_PACKAGE naming the install command when a used provider is not installed', () => {
    // Makes @cdktf/provider-aws unresolvable, as in an app that never installed it.
    const hide = `const M = require('module'); const orig = M._resolveFilename;
      M._resolveFilename = function (req, ...rest) {
        if (req.startsWith('@cdktf/provider-aws/')) { const e = new Error("Cannot find module '" + req + "'"); e.code = 'MODULE_NOT_FOUND'; throw e; }
        return orig.call(this, req, ...rest);
      };`;
    const r = child(`
      const stack = new TerraformStack(new App(), 's');
      const k8s = new m.KubernetesTarget(stack, 'k8s', { namespace: 'ml' });
      let err;
      try { new m.AwsTarget(stack, 'aws', { region: 'us-east-1' }); } catch (e) { err = { name: e.name, code: e.code, message: e.message }; }
      out({ err, k8s: !!k8s });`, hide);
    expect(r.k8s).toBe(true);
    expect(r.err).toMatchObject({ name: 'MlInfraError', code: 'MISSING_PACKAGE' });
    expect(r.err.message).toContain('npm install @cdktf/provider-aws@^21.22.1');
  });
});

describe('lazyClass', () => {
  it('constructs instances of the real class, forwards statics and instanceof, and loads once', () => {
    let loads = 0;
    class Real { static kind = 'real'; constructor(public readonly v: number) {} }
    const Lazy = lazyClass(() => { loads += 1; return Real; });
    expect(loads).toBe(0);
    const a = new Lazy(1);
    expect(a).toBeInstanceOf(Real);
    expect(a instanceof Lazy).toBe(true);
    expect(Lazy.kind).toBe('real');
    expect(new Lazy(2).v).toBe(2);
    expect(loads).toBe(1);
  });
});

describe('one copy of constructs', () => {
  it('fails with INCOMPATIBLE_PACKAGE when the scope comes from another copy of constructs', () => {
    // A scope that says it is a Construct (the cross-copy symbol) but is not one of ours.
    const foreign = Object.create(null);
    foreign[Symbol.for('constructs.Construct')] = true;
    let err: unknown;
    try {
      new KubernetesTarget(foreign as Construct, 'k8s', { namespace: 'ml' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MlInfraError);
    expect((err as MlInfraError).code).toBe('INCOMPATIBLE_PACKAGE');
    expect((err as Error).message).toMatch(/npm ls constructs/);
    // An unsupported major names the install.
    expect(() => checkConstructsVersion('k8s', '11.0.0')).toThrow(/INCOMPATIBLE_PACKAGE.*npm install constructs@\^10/);
    expect(() => checkConstructsVersion('k8s', '10.8.1')).not.toThrow();
    // A scope from our copy is accepted.
    expect(() => new KubernetesTarget(new TerraformStack(new App(), 's'), 'k8s', { namespace: 'ml' })).not.toThrow();
  });
});
