/**
 * The host start-up script (AWS user-data, GCP startup-script): installs Node.js and the agent,
 * fetches the agent token from the cloud's secret store at every service start, and runs the agent
 * under systemd. Terraform interpolates `${...}` in this text, so the script writes shell variables
 * as `$NAME` only, never with braces.
 */

export interface BootstrapOptions {
  /** Cluster name, for logs and the unit's environment. */
  readonly clusterName: string;
  readonly nodeVersion: string;
  readonly nodeDistUrl: string;
  /** Shell command that copies an object URI to a local path: `(uri, dest) => command`. */
  readonly copyCommand: (uri: string, dest: string) => string;
  readonly agentScriptUri: string;
  readonly agentManifestUri: string;
  /** Shell command that prints the agent token on stdout. */
  readonly tokenCommand: string;
  /** Body of the script the agent runs to remove this host when idle (empty when idle stop is off). */
  readonly stopScript?: string;
  readonly idleStopMinutes: number;
  readonly agentPort: number;
  readonly preemption: 'aws' | 'gcp' | 'none';
  /** Appended as is to the serve command: each argument with a leading space (rendered lazily). */
  readonly extraServeArgs?: string;
  /** Extra environment for the agent (non-secret). */
  readonly environment?: Readonly<Record<string, string>>;
}

export const MLINFRA_HOME = '/opt/mlinfra';
export const AGENT_DATA_DIR = '/var/lib/mlinfra';
export const TOKEN_FILE = '/run/mlinfra/token';

/** Single-quotes a value for bash. Terraform references inside stay intact. */
export function shq(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

export function renderBootstrap(o: BootstrapOptions): string {
  const serveArgs = [
    'serve', '--host', '0.0.0.0', '--port', String(o.agentPort), '--data-dir', AGENT_DATA_DIR,
    '--token-file', TOKEN_FILE, '--preemption', o.preemption,
  ];
  if (o.idleStopMinutes > 0 && o.stopScript) {
    serveArgs.push('--idle-stop-minutes', String(o.idleStopMinutes), '--stop-command', `${MLINFRA_HOME}/stop.sh`);
  }
  const env = Object.entries({ MLINFRA_CLUSTER: o.clusterName, ...o.environment })
    .map(([k, v]) => `Environment=${k}=${v}`).join('\n');

  return `#!/bin/bash
# mlinfra-agent start-up for cluster ${o.clusterName}: Node.js, the agent, its token fetcher and a systemd unit.
set -euo pipefail
exec >>/var/log/mlinfra-bootstrap.log 2>&1
echo "mlinfra bootstrap start: $(date -u +%FT%TZ)"

MLINFRA_HOME=${MLINFRA_HOME}
NODE_VERSION=${o.nodeVersion}
NODE_DIST=${shq(o.nodeDistUrl)}
install -d -m 0755 "$MLINFRA_HOME" "$MLINFRA_HOME/agent"
install -d -m 0700 ${AGENT_DATA_DIR}

# Node.js from the official tarball, checked against the release's SHASUMS256.txt.
if [ ! -x "$MLINFRA_HOME/node/bin/node" ]; then
  case "$(uname -m)" in
    x86_64) NODE_ARCH=x64 ;;
    aarch64) NODE_ARCH=arm64 ;;
    *) echo "mlinfra: unsupported architecture $(uname -m)" >&2; exit 1 ;;
  esac
  TARBALL="node-v$NODE_VERSION-linux-$NODE_ARCH.tar.xz"
  WORK=$(mktemp -d)
  curl -fsSL --retry 5 --retry-delay 3 -o "$WORK/$TARBALL" "$NODE_DIST/v$NODE_VERSION/$TARBALL"
  curl -fsSL --retry 5 --retry-delay 3 -o "$WORK/SHASUMS256.txt" "$NODE_DIST/v$NODE_VERSION/SHASUMS256.txt"
  (cd "$WORK" && grep " $TARBALL\\$" SHASUMS256.txt | sha256sum -c -)
  install -d -m 0755 "$MLINFRA_HOME/node"
  tar -xJf "$WORK/$TARBALL" -C "$MLINFRA_HOME/node" --strip-components=1
  rm -rf "$WORK"
fi
export PATH="$MLINFRA_HOME/node/bin:$PATH"

# The agent bundle and its native/SDK dependencies, pinned by the bundle's package.json.
${o.copyCommand(o.agentScriptUri, '"$MLINFRA_HOME/agent/mlinfra-agent.js"')}
${o.copyCommand(o.agentManifestUri, '"$MLINFRA_HOME/agent/package.json"')}
(cd "$MLINFRA_HOME/agent" && npm install --omit=dev --no-audit --no-fund --loglevel=error)

# The token is read from the secret store at every start into tmpfs; it is never in this script.
cat > "$MLINFRA_HOME/fetch-token.sh" <<'MLINFRA_EOF'
#!/bin/bash
set -euo pipefail
umask 077
install -d -m 0700 /run/mlinfra
${o.tokenCommand} > ${TOKEN_FILE}.tmp
mv ${TOKEN_FILE}.tmp ${TOKEN_FILE}
MLINFRA_EOF
chmod 0700 "$MLINFRA_HOME/fetch-token.sh"
${o.stopScript ? `
# Idle stop: the agent runs this when nothing has been queued or running for ${o.idleStopMinutes} minutes.
cat > "$MLINFRA_HOME/stop.sh" <<'MLINFRA_EOF'
#!/bin/bash
set -euo pipefail
${o.stopScript}
MLINFRA_EOF
chmod 0700 "$MLINFRA_HOME/stop.sh"
` : ''}
cat > /etc/systemd/system/mlinfra-agent.service <<'MLINFRA_EOF'
[Unit]
Description=mlinfra-agent job runner
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStartPre=${MLINFRA_HOME}/fetch-token.sh
ExecStart=${MLINFRA_HOME}/node/bin/node ${MLINFRA_HOME}/agent/mlinfra-agent.js ${serveArgs.join(' ')}${o.extraServeArgs ?? ''}
Restart=always
RestartSec=5
KillMode=mixed
TimeoutStopSec=90
LimitNOFILE=65536
${env}

[Install]
WantedBy=multi-user.target
MLINFRA_EOF
systemctl daemon-reload
systemctl enable --now mlinfra-agent.service
echo "mlinfra bootstrap done: $(date -u +%FT%TZ)"
`;
}
