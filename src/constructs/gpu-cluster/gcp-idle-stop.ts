/**
 * Idle stop on GCP: the script an idle host's agent runs to remove the host from its regional MIG
 * without taking the group below `nodes.min`.
 *
 * Exact floor: hosts serialize on a lock object in the cluster's bucket, created with
 * `ifGenerationMatch=0` (GCS creates it only when no live version exists: the request fails with 412
 * otherwise). The holder reads the group's target size, deletes itself through the group (which lowers
 * the target size, so the group does not replace it), waits until the group shows the lower size, and
 * only then releases the lock. A lock left by a host that died is taken over after `LOCK_STALE_SECONDS`.
 *
 * It calls the REST APIs with the metadata server's token (Node's fetch, no gcloud): gcloud's
 * `delete-instances` waits on a region operation, which the group-only role cannot read.
 *
 * Exit codes, as the agent reads them: 0 = this host is being deleted; non-zero = it stays (at the
 * minimum, lock busy, API error) and the agent tries again after another idle period.
 */

/** A lock older than this is a dead holder's: taken over. */
export const LOCK_STALE_SECONDS = 600;
/** The lock object in the cluster's bucket. */
export const IDLE_STOP_LOCK_OBJECT = 'mlinfra/idle-stop.lock';

export interface GcpIdleStopOptions {
  readonly project: string;
  readonly region: string;
  readonly group: string;
  readonly minNodes: number;
  /** The cluster's bucket (may be a Terraform reference). */
  readonly bucket: string;
  /** Node.js on the host. */
  readonly nodePath: string;
}

// Plain ES2020 for Node 18+. No template literals and no percent-brace: Terraform would read them.
const PROGRAM = String.raw`'use strict';
const C = JSON.parse(process.env.MLINFRA_STOP_CONFIG);
const E = process.env;
const MD = E.MLINFRA_GCE_METADATA || 'http://metadata.google.internal/computeMetadata/v1';
const COMPUTE = E.MLINFRA_COMPUTE_API || 'https://compute.googleapis.com/compute/v1';
const STORAGE = E.MLINFRA_STORAGE_API || 'https://storage.googleapis.com';
const POLL_MS = Number(E.MLINFRA_STOP_POLL_MS || 2000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (m) => console.log('mlinfra idle stop: ' + m);
// a named error: the journal line says a Google API call failed, with its method, URL and answer
class GoogleApiError extends Error {
  constructor(message) { super(message); this.name = 'GoogleApiError'; }
}
async function call(url, init, okStatuses) {
  const r = await fetch(url, init);
  if (okStatuses && okStatuses.includes(r.status)) return r;
  if (!r.ok) throw new GoogleApiError((init && init.method || 'GET') + ' ' + url + ' -> ' + r.status + ' ' + (await r.text()).slice(0, 300));
  return r;
}
const md = async (path) => (await call(MD + path, { headers: { 'Metadata-Flavor': 'Google' } })).text();
async function main() {
  const token = JSON.parse(await md('/instance/service-accounts/default/token')).access_token;
  const name = (await md('/instance/name')).trim();
  const zone = (await md('/instance/zone')).trim().split('/').pop();
  const auth = { Authorization: 'Bearer ' + token };
  const group = COMPUTE + '/projects/' + C.project + '/regions/' + C.region + '/instanceGroupManagers/' + C.group;
  const lock = STORAGE + '/storage/v1/b/' + encodeURIComponent(C.bucket) + '/o/' + encodeURIComponent(C.lock);
  const create = STORAGE + '/upload/storage/v1/b/' + encodeURIComponent(C.bucket) + '/o?uploadType=media&ifGenerationMatch=0&name=' + encodeURIComponent(C.lock);
  let generation;
  for (let attempt = 0; generation === undefined; attempt++) {
    const r = await call(create, { method: 'POST', headers: Object.assign({ 'Content-Type': 'text/plain' }, auth), body: name }, [412]);
    if (r.status !== 412) { generation = (await r.json()).generation; break; }
    const held = await call(lock, { headers: auth }, [404]);
    if (held.status === 404) continue;
    const meta = await held.json();
    if (Date.now() - Date.parse(meta.timeCreated) > C.staleSeconds * 1000) {
      log('taking over a stale lock of ' + meta.generation);
      await call(lock + '?ifGenerationMatch=' + meta.generation, { method: 'DELETE', headers: auth }, [404, 412]);
      continue;
    }
    if (attempt >= 30) { log('another host is leaving the group; ' + name + ' stays for now'); return 75; }
    await sleep(POLL_MS + Math.floor(Math.random() * POLL_MS));
  }
  let release = true;
  try {
    const before = (await (await call(group, { headers: auth })).json()).targetSize;
    if (before <= C.min) { log('group ' + C.group + ' at its minimum (' + before + '); ' + name + ' stays'); return 75; }
    await call(group + '/deleteInstances', {
      method: 'POST', headers: Object.assign({ 'Content-Type': 'application/json' }, auth),
      body: JSON.stringify({ instances: ['zones/' + zone + '/instances/' + name] }),
    });
    // The next holder must read the lowered size: keep the lock until the group shows it.
    release = false;
    for (let i = 0; i < 90; i++) {
      const now = (await (await call(group, { headers: auth })).json()).targetSize;
      if (now < before) { release = true; log(name + ' leaves group ' + C.group + ' (' + before + ' -> ' + now + ')'); return 0; }
      await sleep(POLL_MS);
    }
    log('deletion of ' + name + ' requested; the group has not shown it yet (the lock expires by itself)');
    return 0;
  } finally {
    if (release) await call(lock + '?ifGenerationMatch=' + generation, { method: 'DELETE', headers: auth }, [404, 412]);
  }
}
main().then((code) => process.exit(code), (err) => { console.error('mlinfra idle stop failed: ' + (err && err.message || err)); process.exit(1); });
`;

/** The body of `stop.sh` (bash): runs the program above with the host's Node.js. */
export function gcpIdleStopScript(o: GcpIdleStopOptions): string {
  const config = JSON.stringify({ project: o.project, region: o.region, group: o.group, min: o.minNodes, bucket: o.bucket, lock: IDLE_STOP_LOCK_OBJECT, staleSeconds: LOCK_STALE_SECONDS });
  return [
    `NODE=${o.nodePath}`,
    `[ -x "$NODE" ] || NODE=node`,
    `export MLINFRA_STOP_CONFIG='${config.replace(/'/g, `'\\''`)}'`,
    `exec "$NODE" - <<'MLINFRA_STOP_JS'`,
    PROGRAM.trimEnd(),
    'MLINFRA_STOP_JS',
  ].join('\n');
}
