/**
 * `mlinfra-agent models list | show VERSION | promote VERSION | rollback | sync`: the model registry of a
 * pipeline, read and moved straight in its artifact store with the caller's cloud credentials.
 */
import type { Command } from 'commander';
import { Storage } from '../storage/index';
import { registryRollout } from './endpoints';
import { syncRegistryEndpoints } from './promotion';
import { ModelRegistry, RegistryError, type ModelVersion } from './registry';

export interface ModelsIo {
  readonly env: NodeJS.ProcessEnv;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly exit: (code: number) => void;
}

const EXIT: Record<RegistryError['code'], number> = { bad_request: 2, not_found: 2, missing_files: 1, conflict: 1, unreadable: 1, rollout_failed: 1 };

export function addModelsCommand(program: Command, io: ModelsIo): void {
  const models = program.command('models').description('The model registry of a pipeline: list, show, promote, roll back.');
  const withStore = (c: Command) => c
    .option('--artifacts <uri>', "the pipeline's artifact store: file://, s3:// or gs:// (or MLINFRA_ARTIFACTS_URI)")
    .option('--pipeline <name>', 'the pipeline name recorded in new versions (or MLINFRA_PIPELINE)');
  const registryOf = (o: Record<string, unknown>): ModelRegistry => {
    const uri = (o.artifacts as string | undefined) ?? io.env.MLINFRA_ARTIFACTS_URI;
    if (!uri) throw new RegistryError('bad_request', 'no artifact store: pass --artifacts URI (the pipeline\'s artifactsUri) or set MLINFRA_ARTIFACTS_URI');
    return new ModelRegistry(new Storage(), uri, (o.pipeline as string | undefined) ?? io.env.MLINFRA_PIPELINE ?? '');
  };
  const act = (fn: (...a: any[]) => Promise<unknown>) => async (...a: unknown[]): Promise<void> => { // eslint-disable-line @typescript-eslint/no-explicit-any
    try {
      const out = await fn(...a);
      io.stdout.write(typeof out === 'string' ? out : `${JSON.stringify(out, null, 2)}\n`);
      io.exit(0);
    } catch (e) {
      const code = e instanceof RegistryError ? e.code : 'registry_error';
      io.stderr.write(`${JSON.stringify({ error: { code, message: (e as Error).message } })}\n`);
      io.exit(e instanceof RegistryError ? EXIT[e.code] : 1);
    }
  };

  withStore(models.command('list')).description('Registered versions, oldest first; * marks the one that serves.')
    .option('--json', 'print {current, versions: [...]} as JSON', false)
    .action(act(async (o: Record<string, unknown>) => {
      const reg = registryOf(o);
      const [versions, state] = await Promise.all([reg.list(), reg.state()]);
      if (o.json) return { current: state.current, pending: state.pending ?? null, versions };
      const row = (v: ModelVersion) => [v.version === state.current ? '*' : ' ', v.version, v.createdAt, v.runId,
        Object.entries(v.metrics).map(([k, n]) => `${k}=${n}`).join(',')].join('\t');
      return `${['', 'VERSION', 'CREATED', 'RUN', 'METRICS'].join('\t')}\n${versions.map(row).join('\n')}${versions.length ? '\n' : ''}`;
    }));
  withStore(models.command('show')).description('One version as JSON.').argument('<version>')
    .action(act(async (version: string, o: Record<string, unknown>) => registryOf(o).show(version)));
  // Every endpoint registered under models/endpoints/ rolls the version out before the pointer moves.
  const moveOptions = async (reg: ModelRegistry, o: Record<string, unknown>) => ({
    reason: o.reason as string | undefined,
    ...(o.rollout === false ? {} : { rollout: await registryRollout(new Storage(), reg.artifactsUri, reg.pipeline) }),
  });
  withStore(models.command('promote')).description('Roll VERSION out to the endpoints that serve this pipeline, then make it current.')
    .argument('<version>').option('--reason <text>', 'recorded in the history')
    .option('--no-rollout', 'move the pointer only (the endpoints are updated some other way)')
    .action(act(async (version: string, o: Record<string, unknown>) => {
      const reg = registryOf(o);
      return reg.promote(version, await moveOptions(reg, o));
    }));
  withStore(models.command('sync')).description('Roll the current version out to every endpoint that does not serve it yet (one added since the last promotion, or one a failed rollout left behind); print what changed as JSON.')
    .action(act(async (o: Record<string, unknown>) => {
      const reg = registryOf(o);
      const lines: string[] = [];
      const { synced, unchecked } = await syncRegistryEndpoints({ storage: new Storage(), artifactsUri: reg.artifactsUri, pipeline: reg.pipeline, say: (l) => lines.push(l) });
      if (unchecked) throw new RegistryError('unreadable', unchecked);
      if (synced.some((e) => e.error)) throw new RegistryError('rollout_failed', lines.join('; '));
      return { synced };
    }));
  withStore(models.command('rollback')).description('Roll the version that served before the current one out again, and make it current.')
    .option('--reason <text>', 'recorded in the history')
    .option('--no-rollout', 'move the pointer only')
    .action(act(async (o: Record<string, unknown>) => {
      const reg = registryOf(o);
      return reg.rollback(await moveOptions(reg, o));
    }));
}
