import { stopAllAgents } from './helpers';
import { killRounds } from './kill-rounds';

afterAll(stopAllAgents);

test('20 random kill -9 rounds (~900 jobs): 0 crashes, 0 lost, 0 completions recorded twice, 0 jobs run twice', async () => {
  const r = await killRounds(20, 45, 21);
  process.stderr.write(`kill -9 rounds: ${JSON.stringify(r)}\n`);
  expect(r.accepted).toBeGreaterThan(300);
  expect(r).toMatchObject({ crashes: 0, lost: 0, duplicatedCompletions: 0, ranMoreThanOnce: 0 });
}, 600_000);
