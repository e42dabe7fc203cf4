// A host started for a pipeline declares that pipeline's metric series before its run ends, so a
// metrics agent that drops each series' first sample (CloudWatch) still sees the first run.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { runPipelinesOnStart } from '../../src/runtime-agent/pipeline';
import { Storage } from '../../src/runtime-agent/storage/index';
import { writeSpec } from './pipeline-helpers';

test('runPipelinesOnStart calls onSpecLoaded with each spec name before any run', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mlinfra-onstart-'));
  const artifacts = path.join(dir, 'artifacts');
  const spec = writeSpec(dir, {
    version: 1, name: 'nightly', artifactsUri: `file://${artifacts}`, params: {}, autostop: false,
    steps: [{ kind: 'run', name: 'a', argv: ['true'], env: {}, after: [], retries: 0, gpus: 0 }],
  });
  const declared: string[] = [];
  // No agent listens on port 1: the run itself fails, after the spec was loaded and declared.
  const outcomes = await runPipelinesOnStart({
    specUris: [spec], onSpecLoaded: (n) => declared.push(n), minIntervalMinutes: 0, agentUrl: 'http://127.0.0.1:1', token: 'x'.repeat(32),
    workDir: path.join(dir, 'work'), storage: new Storage(), logger: pino({ level: 'silent' }),
  });
  expect(declared).toEqual(['nightly']);
  expect(outcomes).toHaveLength(1);
});
