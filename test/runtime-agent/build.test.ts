import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BUNDLE, ROOT, requireBundle, startAgent, stopAllAgents, tmpDir, waitFor } from './helpers';

afterAll(stopAllAgents);

const HOST_FILES = ['autoscaling-aws.js', 'mlinfra-agent.js', 'package.json', 'queue-sqs.js', 'rollout-cloudrun.js', 'rollout-kubernetes.js', 'rollout-sagemaker.js', 'storage-gcs.js', 'storage-s3.js'];

describe('the agent bundle (scripts/build-agent.mjs)', () => {
  test('two builds are byte-identical; the agent is one file under 1 MiB with a node shebang, the SDKs separate files', () => {
    const a = tmpDir();
    const b = tmpDir();
    const outA = execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'build-agent.mjs'), '--outdir', a], { encoding: 'utf8' });
    execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'build-agent.mjs'), '--outdir', b], { encoding: 'utf8' });
    expect(outA).toMatch(/mlinfra-agent\.js: \d+ bytes/);
    expect(fs.readdirSync(a).sort()).toEqual(HOST_FILES);
    for (const f of HOST_FILES) expect(fs.readFileSync(path.join(a, f)).equals(fs.readFileSync(path.join(b, f)))).toBe(true);
    const bytesA = fs.readFileSync(path.join(a, 'mlinfra-agent.js'));
    expect(bytesA.length).toBeLessThan(1024 * 1024);
    expect(bytesA.subarray(0, 20).toString()).toBe('#!/usr/bin/env node\n');
    for (const f of HOST_FILES) expect(fs.readFileSync(path.join(a, f)).includes(Buffer.from(ROOT))).toBe(false);
    const text = bytesA.toString('utf8');
    // better-sqlite3 stays a require() (Node < 22.13 only); the SDKs are the files beside the agent, not inside it
    expect(text).toContain('require("better-sqlite3")');
    expect(text).toContain('require("./storage-s3.js")');
    expect(text).toContain('require("./storage-gcs.js")');
    expect(text).toContain('require("./queue-sqs.js")');
    expect(text).toContain('require("./autoscaling-aws.js")');
    expect(text).not.toContain('S3Client');
    expect(text).not.toContain('cdktf');
    expect(fs.readFileSync(path.join(a, 'storage-s3.js'), 'utf8')).toContain('S3Client');
    expect(fs.readFileSync(path.join(a, 'storage-gcs.js'), 'utf8')).not.toContain('require("@google-cloud/storage")');
  });

  test('dist/agent/package.json asks nothing to be installed', () => {
    requireBundle();
    const manifest = JSON.parse(fs.readFileSync(path.join(path.dirname(BUNDLE), 'package.json'), 'utf8'));
    expect(manifest.dependencies).toBeUndefined();
    expect(manifest.bin).toEqual({ 'mlinfra-agent': 'mlinfra-agent.js' });
  });

  test('the host files alone, without node_modules: on this Node without node:sqlite, serve names what it needs', () => {
    requireBundle();
    const host = tmpDir();
    for (const f of HOST_FILES) fs.copyFileSync(path.join(path.dirname(BUNDLE), f), path.join(host, f));
    fs.writeFileSync(path.join(host, 'tok'), 'token-0123456789abcdef\n');
    const hasNodeSqlite = spawnSync(process.execPath, ['-e', 'require("node:sqlite")']).status === 0;
    if (hasNodeSqlite) return;
    const r = spawnSync(process.execPath, [path.join(host, 'mlinfra-agent.js'), 'serve', '--port', '0', '--data-dir', path.join(host, 'd'), '--token-file', path.join(host, 'tok')],
      { encoding: 'utf8', timeout: 15_000, cwd: host });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/needs Node\.js 22\.13\+ \(built-in node:sqlite\) or the better-sqlite3 package/);
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
    expect(loaded).not.toContain('storage-s3');
    expect(loaded).not.toContain('storage-gcs');
  });

  test('--help lists the serve contract flags', async () => {
    const p = spawn(process.execPath, [BUNDLE, 'serve', '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (c: Buffer) => { out += c.toString(); });
    await waitFor('help', () => p.exitCode !== null);
    for (const flag of ['--host', '--port', '--data-dir', '--token-file', '--gpus', '--idle-stop-minutes', '--stop-command', '--pre-stop-command',
      '--preemption', '--aws-imds-url', '--gcp-metadata-url', '--preemption-poll-seconds', '--grace-seconds', '--log-max-bytes',
      '--reset-journal', '--job-user', '--max-queued', '--request-timeout-seconds']) {
      expect(out).toContain(flag);
    }
  });
});
