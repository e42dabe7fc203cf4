/**
 * ClusterStore.list on a file:// bucket: a torn read (a write in progress on a store whose PUT is not
 * atomic) is read again and the job is listed; a record that stays unreadable is named, not dropped.
 */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ClusterStore, type ClusterJob } from '../../src/runtime-agent/cluster/records';
import { Storage } from '../../src/runtime-agent/storage/index';

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(tmpdir(), 'mlinfra-cluster-list-'));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

const job = (id: string): ClusterJob => ({ id, spec: { argv: ['true'] }, state: 'succeeded', createdAt: '', updatedAt: '', attempts: [] } as unknown as ClusterJob);

/** A Storage whose reads of `torn` return half the record the first `times` times. */
function tornStorage(torn: string, times: number): Storage {
  const real = new Storage();
  let left = times;
  return new Proxy(real, {
    get(target, prop, recv) {
      if (prop === 'readVersioned') {
        return async (uri: string) => {
          const v = await target.readVersioned(uri);
          if (v && uri.endsWith(`/${torn}.json`) && left-- > 0) return { ...v, text: v.text.slice(0, 10) };
          return v;
        };
      }
      const v = Reflect.get(target, prop, recv);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

test('a torn read is read again: every job is listed, newest first', async () => {
  const artifacts = pathToFileURL(root).href;
  const seed = new ClusterStore(new Storage(), artifacts, root);
  for (const id of ['mx000001-aaaaaaaaaaaa', 'mx000002-bbbbbbbbbbbb']) await seed.put(job(id), null);
  const store = new ClusterStore(tornStorage('mx000002-bbbbbbbbbbbb', 2), artifacts, root);
  const r = await store.list();
  expect(r.jobs.map((j) => j.id)).toEqual(['mx000002-bbbbbbbbbbbb', 'mx000001-aaaaaaaaaaaa']);
  expect(r.unreadable).toEqual([]);
});

test('a record that stays unreadable is named in unreadable; the others are listed', async () => {
  const artifacts = pathToFileURL(root).href;
  const store = new ClusterStore(new Storage(), artifacts, root);
  await store.put(job('mx000001-aaaaaaaaaaaa'), null);
  fs.writeFileSync(path.join(root, 'jobs', 'mx000003-cccccccccccc.json'), '{"id": "mx0000');
  const r = await store.list();
  expect(r.jobs.map((j) => j.id)).toEqual(['mx000001-aaaaaaaaaaaa']);
  expect(r.unreadable).toEqual([{ key: 'mx000003-cccccccccccc.json', error: expect.stringMatching(/JSON/) }]);
});
