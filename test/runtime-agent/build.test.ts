import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BUNDLE, ROOT, requireBundle, startAgent, stopAllAgents, tmpDir, waitFor } from './helpers';

afterAll(stopAllAgents);

describe('the agent bundle (scripts/build-agent.mjs)', () => {
  test('two builds are byte-identical, under 1 MiB, with a node shebang and no absolute paths', () => {
    const a = tmpDir();
    const b = tmpDir();
    const outA = execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'build-agent.mjs'), '--outdir', a], { encoding: 'utf8' });
    execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'build-agent.mjs'), '--outdir', b], { encoding: 'utf8' });
    expect(outA).toMatch(/mlinfra-agent\.js: \d+ bytes/);
    const bytesA = fs.readFileSync(path.join(a, 'mlinfra-agent.js'));
    const bytesB = fs.readFileSync(path.join(b, 'mlinfra-agent.js'));
    expect(bytesA.equals(bytesB)).toBe(true);
    expect(bytesA.length).toBeLessThan(1024 * 1024);
    expect(bytesA.subarray(0, 20).toString()).toBe('#!/usr/bin/env node\n');
    expect(bytesA.includes(Buffer.from(ROOT))).toBe(false);
    // the externals stay require()s; nothing from cdktf is inside
    const text = bytesA.toString('utf8');
    for (const ext of ['better-sqlite3', '@aws-sdk/client-s3', '@google-cloud/storage']) expect(text).toContain(`require("${ext}")`);
    expect(text).not.toContain('cdktf');
  });

  test('dist/agent/package.json pins the externals to the versions in the root package.json', () => {
    requireBundle();
    const root = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    const manifest = JSON.parse(fs.readFileSync(path.join(path.dirname(BUNDLE), 'package.json'), 'utf8'));
    const pinned = { ...root.dependencies, ...root.devDependencies };
    expect(Object.keys(manifest.dependencies).sort()).toEqual(['@aws-sdk/client-s3', '@google-cloud/storage', 'better-sqlite3']);
    for (const [name, v] of Object.entries(manifest.dependencies)) expect(v).toBe(pinned[name]);
    expect(manifest.bin).toEqual({ 'mlinfra-agent': 'mlinfra-agent.js' });
  });

  test('a file://-only agent never loads the cloud SDKs', async () => {
    // --require a hook that records every resolved module, then use the agent without s3:// or gs://
    const hook = path.join(tmpDir(), 'hook.js');
    const record = path.join(tmpDir(), 'modules.txt');
    fs.writeFileSync(hook, `const M=require('module');const fs=require('fs');const o=M._load;M._load=function(r,...a){fs.appendFileSync(${JSON.stringify(record)}, r+'\\n');return o.call(this,r,...a)};`);
    const agent = await startAgent({ env: { NODE_OPTIONS: `--require ${hook}` } });
    const id = await agent.submit({ argv: ['true'], artifactUri: `file://${tmpDir()}` });
    await agent.waitJob(id);
    const loaded = fs.readFileSync(record, 'utf8');
    expect(loaded).toContain('better-sqlite3');
    expect(loaded).not.toContain('@aws-sdk');
    expect(loaded).not.toContain('@google-cloud');
  });

  test('--help lists the serve contract flags', async () => {
    const p = spawn(process.execPath, [BUNDLE, 'serve', '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (c: Buffer) => { out += c.toString(); });
    await waitFor('help', () => p.exitCode !== null);
    for (const flag of ['--host', '--port', '--data-dir', '--token-file', '--gpus', '--idle-stop-minutes', '--stop-command', '--pre-stop-command',
      '--preemption', '--aws-imds-url', '--gcp-metadata-url', '--preemption-poll-seconds', '--grace-seconds', '--log-max-bytes']) {
      expect(out).toContain(flag);
    }
  });
});
