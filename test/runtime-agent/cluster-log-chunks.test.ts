/**
 * A cluster job's log as a follower reads it (cluster logs -f polls GET /v1/cluster/jobs/:id/logs):
 * chunks are joined as bytes (a UTF-8 character split between two chunks stays whole), and a poll
 * fetches only the chunks it has not read yet (one listing, then the new chunks), on real files.
 */
import * as path from 'node:path';
import { ClusterStore } from '../../src/runtime-agent/cluster/records';
import { Storage } from '../../src/runtime-agent/storage/index';
import { stopAllAgents, tmpDir } from './helpers';

afterAll(stopAllAgents);

test('log chunks are joined as bytes and each is fetched once', async () => {
  const root = tmpDir();
  const storage = new Storage();
  const gets: string[] = [];
  const get = storage.get.bind(storage);
  storage.get = async (uri: string, dest: string) => {
    gets.push(path.basename(uri));
    return get(uri, dest);
  };
  const store = new ClusterStore(storage, `file://${root}/artifacts`, path.join(root, 'tmp'));
  const text = Buffer.from('step 1: 日本語\n');
  const cut = text.indexOf(Buffer.from('本')) + 1; // inside the character's three bytes
  await store.putLogChunk('job1', 1, 0, text.subarray(0, cut));
  await store.putLogChunk('job1', 1, 1, text.subarray(cut));
  expect((await store.logs('job1')).toString('utf8')).toBe('step 1: 日本語\n');
  expect(gets).toEqual(['0001-000000.log', '0001-000001.log']);
  gets.length = 0;
  await store.putLogChunk('job1', 2, 0, Buffer.from('attempt 2\n'));
  expect((await store.logs('job1')).toString('utf8')).toBe('step 1: 日本語\nattempt 2\n');
  expect(gets).toHaveLength(1); // only the new chunk
  expect((await store.logs('job1')).toString('utf8')).toBe('step 1: 日本語\nattempt 2\n');
  expect(gets).toHaveLength(1);
});
