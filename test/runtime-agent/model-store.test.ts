/**
 * The pipeline runner uploads its run directory after every step (so another host can resume the
 * run): files sent before and unchanged since are not sent again, changed and new ones are, on real
 * files (file:// store).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelStore } from '../../src/runtime-agent/model-store';
import { Storage } from '../../src/runtime-agent/storage/index';
import { tmpDir } from './helpers';

test('uploadRun sends each file once until it changes', async () => {
  const root = tmpDir();
  const storage = new Storage();
  const puts: string[] = [];
  const put = storage.put.bind(storage);
  storage.put = async (local: string, uri: string) => {
    puts.push(path.relative(path.join(root, 'run'), local));
    return put(local, uri);
  };
  const store = new ModelStore(storage, `file://${root}/artifacts`);
  const run = path.join(root, 'run');
  fs.mkdirSync(path.join(run, 'steps', 'prep'), { recursive: true });
  fs.writeFileSync(path.join(run, 'run.json'), '{"steps":1}');
  fs.writeFileSync(path.join(run, 'steps', 'prep', 'data.bin'), Buffer.alloc(1 << 20, 1));

  expect(await store.uploadRun('r1', run)).toBe(2);
  expect(puts.sort()).toEqual(['run.json', path.join('steps', 'prep', 'data.bin')]);

  // the next step: run.json is rewritten, a new output appears, the big input is untouched
  puts.length = 0;
  fs.writeFileSync(path.join(run, 'run.json'), '{"steps":2}');
  fs.mkdirSync(path.join(run, 'steps', 'train'));
  fs.writeFileSync(path.join(run, 'steps', 'train', 'metrics.json'), '{"loss":0.1}');
  expect(await store.uploadRun('r1', run)).toBe(2);
  expect(puts.sort()).toEqual(['run.json', path.join('steps', 'train', 'metrics.json')]);

  // nothing changed: nothing is sent (run.json changed just before it was sent: its digest tells)
  puts.length = 0;
  expect(await store.uploadRun('r1', run)).toBe(0);
  // same size, new content, within the same tick of the file clock as the last send: sent again
  fs.writeFileSync(path.join(run, 'run.json'), '{"steps":3}');
  expect(await store.uploadRun('r1', run)).toBe(1);
  expect(puts).toEqual(['run.json']);
  // times that change (here set back a minute) send a file again, once
  const old = new Date(Date.now() - 60_000);
  fs.utimesSync(path.join(run, 'steps', 'prep', 'data.bin'), old, old);
  puts.length = 0;
  expect(await store.uploadRun('r1', run)).toBe(1);
  expect(puts).toEqual([path.join('steps', 'prep', 'data.bin')]);
  expect(await store.uploadRun('r1', run)).toBe(0);
  // another run id is another prefix: everything is sent there
  expect(await store.uploadRun('r2', run)).toBe(3);

  const remote = path.join(root, 'artifacts', 'runs', 'r1');
  expect(fs.readFileSync(path.join(remote, 'run.json'), 'utf8')).toBe('{"steps":3}');
  expect(fs.readFileSync(path.join(remote, 'steps', 'train', 'metrics.json'), 'utf8')).toBe('{"loss":0.1}');
  expect(fs.statSync(path.join(remote, 'steps', 'prep', 'data.bin')).size).toBe(1 << 20);
});
