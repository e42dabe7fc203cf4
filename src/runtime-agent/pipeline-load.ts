/** Loading a pipeline spec and naming runs (the spec itself, its hashes and its validator: ./pipeline-spec). */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PipelineSpecError, validatePipelineSpec, type PipelineSpec } from './pipeline-spec';
import type { Storage } from './storage/index';

/** A time-sortable run id: `20261124T203000Z-1a2b3c` (UTC). */
export function newRunId(now: Date = new Date()): string {
  const ts = `${now.toISOString().slice(0, 19).replace(/[-:]/g, '')}Z`;
  return `${ts}-${randomBytes(3).toString('hex')}`;
}

export const RUN_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Reads a spec (file://, s3://, gs:// or a local path) and validates it. */
export async function loadPipelineSpec(uri: string, storage: Storage): Promise<{ spec: PipelineSpec; raw: unknown; uri: string }> {
  const full = /^[a-z][a-z0-9+.-]*:\/\//i.test(uri) ? uri : path.resolve(uri);
  const tmp = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'mlinfra-spec-'));
  let text: string;
  try {
    const local = path.join(tmp, 'spec.json');
    await storage.get(full, local);
    text = await fs.promises.readFile(local, 'utf8');
  } catch (e) {
    throw new PipelineSpecError(`cannot read the pipeline spec ${uri}: ${(e as Error).message}`, [], 'spec', 'spec_unreadable');
  } finally {
    await fs.promises.rm(tmp, { recursive: true, force: true });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new PipelineSpecError(`the pipeline spec ${uri} is not JSON: ${(e as Error).message}`, [], 'spec', 'spec_unreadable');
  }
  return { spec: validatePipelineSpec(raw), raw, uri: full };
}

