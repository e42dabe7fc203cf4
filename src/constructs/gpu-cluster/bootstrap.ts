/**
 * The host start-up script (AWS user-data, GCP startup-script): installs Node.js and the agent,
 * fetches the agent token from the cloud's secret store at every service start, and runs the agent
 * under systemd. Terraform interpolates `${...}` in this text, so the script writes shell variables
 * as `$NAME` only, never with braces.
 */

import { awsHostLogGroups, HOST_METRICS } from '../../contracts/host-metrics';
import { SecretRef } from '../../core/secrets';
import { NODE_TARBALL_SHA256 } from './node-runtime';
import { Errors } from '../../core/errors';

export interface BootstrapOptions {
  /** Cluster name, for logs and the unit's environment. */
  readonly clusterName: string;
  readonly nodeVersion: string;
  readonly nodeDistUrl: string;
  /** Shell command that copies an object URI to a local path: `(uri, dest) => command`. */
  readonly copyCommand: (uri: string, dest: string) => string;
  readonly agentScriptUri: string;
  /** The object-store module beside the agent (storage-s3.js / storage-gcs.js) and its file name. */
  readonly agentStorageUri: string;
  readonly agentStorageFile: string;
  /** Further modules the agent loads from beside it (queue client, rollouts): each object URI and its file name. */
  readonly agentExtraFiles?: readonly { readonly uri: string; readonly file: string }[];
  /**
   * The cluster's durable queue (issue 17): `serve --queue URL --dead-letter-queue URL --cluster-artifacts URI`,
   * and on AWS the termination lifecycle hook the agent completes after draining (`--lifecycle-hook NAME`).
   */
  readonly clusterQueue?: { readonly queue: string; readonly deadLetterQueue: string; readonly artifacts: string; readonly lifecycleHook?: string; readonly groupName?: string };
  /** Shell command that prints the agent token on stdout. */
  readonly tokenCommand: string;
  /** Body of the script the agent runs to remove this host when idle (empty when idle stop is off). */
  readonly stopScript?: string;
  readonly idleStopMinutes: number;
  readonly agentPort: number;
  readonly preemption: 'aws' | 'gcp' | 'none';
  /** Lines appended to the token fetcher (other clusters' tokens, rendered lazily). */
  readonly peerTokenFetches?: string;
  /** Appended as is to the serve command: each argument with a leading space (rendered lazily). */
  readonly extraServeArgs?: string;
  /**
   * Run jobs as this system user, created by the script with no login shell: jobs then cannot read
   * the agent's token (root-only under /run/mlinfra) or its journal. @default - jobs run as root
   */
  readonly jobUser?: string;
  /** Extra environment for the agent (non-secret). */
  readonly environment?: Readonly<Record<string, string>>;
  /**
   * Shell that installs and configures the host's metrics agent (CloudWatch agent, Ops Agent). Runs
   * after the agent has started, as its own `bash -euo pipefail`, whose failure is logged, never fatal.
   */
  readonly hostMetrics?: string;
  /** Shell run when `hostMetrics` fails: reports it off-host (a metric the monitoring stack alarms on). */
  readonly hostMetricsFailed?: string;
  /** GPUs the host has (from the catalog): passed as `--gpus`, so the agent never counts before the driver is up. */
  readonly gpus?: number;
  /** Wait up to this long for `nvidia-smi -L` to list `gpus` GPUs before starting the agent (0: no wait). */
  readonly gpuDriverWaitSeconds?: number;
  /** Give the agent (and so its jobs) the login shell's PATH, where images put their Python environment. */
  readonly jobPathFromLoginShell?: boolean;
}

/**
 * Shell that waits, bounded, for the NVIDIA driver to list `count` GPUs (images may install it on
 * first boot, after the start-up script began). Exits 1 on timeout: the host stays unhealthy and the
 * group's autohealing replaces it.
 */
export function gpuDriverWaitScript(count: number, timeoutSeconds: number): string {
  return `GPU_WAIT_END=$(( $(date +%s) + ${timeoutSeconds} ))
until [ "$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ')" -ge ${count} ]; do
  if [ "$(date +%s)" -ge "$GPU_WAIT_END" ]; then
    echo "mlinfra: the NVIDIA driver did not show ${count} GPU(s) within ${timeoutSeconds}s" >&2
    exit 1
  fi
  sleep 5
done
echo "mlinfra: ${count} GPU(s) visible"`;
}

/** Shell that writes a systemd drop-in giving the agent the login shell's PATH (plus /opt/conda/bin when present). */
export function jobPathDropIn(): string {
  return `JOB_PATH=$(bash -lc 'printf %s "$PATH"' 2>/dev/null || true)
[ -d /opt/conda/bin ] && JOB_PATH="/opt/conda/bin:$JOB_PATH"
install -d -m 0755 /etc/systemd/system/mlinfra-agent.service.d
printf '[Service]\nEnvironment="PATH=%s:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"\n' "$JOB_PATH" > /etc/systemd/system/mlinfra-agent.service.d/path.conf`;
}

export const MLINFRA_HOME = '/opt/mlinfra';
export const AGENT_DATA_DIR = '/var/lib/mlinfra';
export const TOKEN_FILE = '/run/mlinfra/token';

/** Single-quotes a value for bash. Terraform references inside stay intact. */
export function shq(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** Where a host keeps the token of another cluster it may submit to (OOM escalation). */
export function peerTokenFile(peerName: string): string {
  return `/run/mlinfra/clusters/${peerName}/token`;
}

/** The shell command that prints a secret's value with the cloud CLI on the host. */
export function secretReadCommand(ref: SecretRef, region: string): string {
  switch (ref.store) {
    case 'aws-secrets-manager':
      return `aws secretsmanager get-secret-value --region ${region} --secret-id ${shq(ref.arn)} --query SecretString --output text`;
    case 'gcp-secret-manager':
      return `gcloud secrets versions access latest --secret=${shq(ref.secretId)} --project=${shq(ref.project)}`;
    case 'kubernetes-secret':
      throw Errors.invalid('start-up script', 'secret store', `${ref.namespace}/${ref.name}`, 'a secret in AWS Secrets Manager or GCP Secret Manager: a VM host cannot read a Kubernetes Secret');
  }
}

/** Fetcher lines for peers' tokens: each into its own tmpfs file, like the host's own. */
export function renderPeerTokenFetches(peers: readonly { name: string; ref: SecretRef }[], region: string): string {
  return peers.map(({ name, ref }) => {
    const file = peerTokenFile(name);
    return `\ninstall -d -m 0700 /run/mlinfra/clusters/${name}\n${secretReadCommand(ref, region)} > ${file}.tmp\nmv ${file}.tmp ${file}`;
  }).join('');
}

export function renderBootstrap(o: BootstrapOptions): string {
  const serveArgs = [
    'serve', '--host', '0.0.0.0', '--port', String(o.agentPort), '--data-dir', AGENT_DATA_DIR,
    '--token-file', TOKEN_FILE, '--preemption', o.preemption,
    ...(o.gpus !== undefined ? ['--gpus', String(o.gpus)] : []),
    ...(o.jobUser ? ['--job-user', o.jobUser] : []),
    ...(o.clusterQueue ? [
      '--queue', o.clusterQueue.queue, '--dead-letter-queue', o.clusterQueue.deadLetterQueue, '--cluster-artifacts', o.clusterQueue.artifacts,
      // The group name is passed, not read from instance tags: IMDS tag access stays off.
      ...(o.clusterQueue.lifecycleHook ? ['--lifecycle-hook', o.clusterQueue.lifecycleHook, ...(o.clusterQueue.groupName ? ['--asg-name', o.clusterQueue.groupName] : [])] : []),
    ] : []),
    // The host's metrics agent scrapes this loopback-only, token-free copy of /metrics.
    ...(o.hostMetrics ? ['--metrics-local-port', String(HOST_METRICS.localPort)] : []),
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
install -d -m ${o.jobUser ? '0711' : '0700'} ${AGENT_DATA_DIR}
${o.jobUser ? `# Jobs run as ${o.jobUser}: no login shell, a home of its own, no access to the token (root-only
# /run/mlinfra). The data directory is traverse-only for it, to reach its own work directories.
id -u ${o.jobUser} >/dev/null 2>&1 || useradd --system --user-group --create-home --home-dir /var/lib/${o.jobUser} --shell /usr/sbin/nologin ${o.jobUser}
` : ''}
# Node.js from the official tarball, checked against its pinned sha256 (a version without a pinned
# sum is checked against the release's SHASUMS256.txt).
if [ ! -x "$MLINFRA_HOME/node/bin/node" ]; then
  case "$(uname -m)" in
    x86_64) NODE_ARCH=x64; NODE_SHA256=${NODE_TARBALL_SHA256[o.nodeVersion]?.x64 ?? ''} ;;
    aarch64) NODE_ARCH=arm64; NODE_SHA256=${NODE_TARBALL_SHA256[o.nodeVersion]?.arm64 ?? ''} ;;
    *) echo "mlinfra: unsupported architecture $(uname -m)" >&2; exit 1 ;;
  esac
  TARBALL="node-v$NODE_VERSION-linux-$NODE_ARCH.tar.xz"
  WORK=$(mktemp -d)
  curl -fsSL --retry 5 --retry-delay 3 -o "$WORK/$TARBALL" "$NODE_DIST/v$NODE_VERSION/$TARBALL"
  if [ -n "$NODE_SHA256" ]; then
    (cd "$WORK" && echo "$NODE_SHA256  $TARBALL" | sha256sum -c -)
  else
    curl -fsSL --retry 5 --retry-delay 3 -o "$WORK/SHASUMS256.txt" "$NODE_DIST/v$NODE_VERSION/SHASUMS256.txt"
    (cd "$WORK" && grep " $TARBALL\\$" SHASUMS256.txt | sha256sum -c -)
  fi
  install -d -m 0755 "$MLINFRA_HOME/node"
  tar -xJf "$WORK/$TARBALL" -C "$MLINFRA_HOME/node" --strip-components=1
  rm -rf "$WORK"
fi
export PATH="$MLINFRA_HOME/node/bin:$PATH"

# The agent: one bundled file plus the object-store module it loads for this cloud's URIs. Nothing to
# install: the journal uses Node's built-in node:sqlite.
${o.copyCommand(o.agentScriptUri, '"$MLINFRA_HOME/agent/mlinfra-agent.js"')}
${o.copyCommand(o.agentStorageUri, `"$MLINFRA_HOME/agent/${o.agentStorageFile}"`)}
${(o.agentExtraFiles ?? []).map((f) => `${o.copyCommand(f.uri, `"$MLINFRA_HOME/agent/${f.file}"`)}\n`).join('')}
# The token is read from the secret store at every start into tmpfs; it is never in this script.
cat > "$MLINFRA_HOME/fetch-token.sh" <<'MLINFRA_EOF'
#!/bin/bash
set -euo pipefail
umask 077
install -d -m 0700 /run/mlinfra
${o.tokenCommand} > ${TOKEN_FILE}.tmp
mv ${TOKEN_FILE}.tmp ${TOKEN_FILE}${o.peerTokenFetches ?? ''}
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
${o.jobPathFromLoginShell ? `${jobPathDropIn()}
` : ''}${o.gpus && o.gpuDriverWaitSeconds ? `# The NVIDIA driver may still be installing (first boot): wait for it, bounded.
${gpuDriverWaitScript(o.gpus, o.gpuDriverWaitSeconds)}
` : ''}systemctl daemon-reload
systemctl enable --now mlinfra-agent.service
${o.hostMetrics ? `
# Host metrics (GPU, the agent's /metrics, kernel log): never fatal, the agent runs without them.
# Its own bash: \`set -e\` is ignored inside a subshell whose status a \`||\` tests.
cat > ${MLINFRA_HOME}/host-metrics.sh <<'MLINFRA_HOST_METRICS_EOF'
${o.hostMetrics}
MLINFRA_HOST_METRICS_EOF
if ! bash -euo pipefail ${MLINFRA_HOME}/host-metrics.sh; then
  echo "mlinfra: host metrics agent setup failed; continuing without it" >&2
  logger -t mlinfra "host metrics agent setup failed" || true
${o.hostMetricsFailed ? `  ${o.hostMetricsFailed.split('\n').join('\n  ')}
` : ''}fi
` : ''}
echo "mlinfra bootstrap done: $(date -u +%FT%TZ)"
`;
}

// ------------------------------------------------------------------------------------ host metrics

// Re-exported for older imports; the contract lives in src/contracts.
export { HOST_METRICS, awsHostLogGroups } from '../../contracts/host-metrics';

/** CloudWatch agent GPU measurements (`nvidia_gpu`); CloudWatch names them `nvidia_smi_<measurement>`. */
export const AWS_GPU_MEASUREMENTS = ['utilization_gpu', 'utilization_memory', 'memory_used', 'memory_total', 'temperature_gpu', 'power_draw'] as const;


const CWA_ETC = '/opt/aws/amazon-cloudwatch-agent/etc';

/** CloudWatch agent configuration: GPU metrics, the agent's /metrics through EMF, the kernel log (NVIDIA XIDs). */
export function renderCloudWatchAgentConfig(clusterName: string): { config: string; prometheus: string } {
  const dim = HOST_METRICS.awsClusterDimension;
  const logs = awsHostLogGroups(clusterName);
  const job = `^${HOST_METRICS.agentJob}$`;
  const config = {
    agent: { metrics_collection_interval: 60, run_as_user: 'root' },
    metrics: {
      namespace: HOST_METRICS.awsGpuNamespace,
      // One series per cluster beside the per-GPU ones: alarms need a fixed dimension set.
      aggregation_dimensions: [[dim]],
      metrics_collected: {
        nvidia_gpu: { measurement: [...AWS_GPU_MEASUREMENTS], metrics_collection_interval: 60, append_dimensions: { [dim]: clusterName } },
      },
    },
    logs: {
      logs_collected: {
        files: { collect_list: [{ file_path: '/var/log/kern.log', log_group_name: logs.kernel, log_stream_name: '{instance_id}' }] },
      },
      // The agent's schema takes prometheus under logs.metrics_collected only (translator/config/schema.json).
      metrics_collected: {
        prometheus: {
          log_group_name: logs.prometheus,
          prometheus_config_path: `${CWA_ETC}/mlinfra-prometheus.yaml`,
          emf_processor: {
            metric_namespace: HOST_METRICS.awsAgentNamespace,
            metric_declaration: [
              { source_labels: ['job'], label_matcher: job, dimensions: [[dim]], metric_selectors: HOST_METRICS.agentGauges.map((m) => `^${m}$`) },
              { source_labels: ['job'], label_matcher: job, dimensions: [[dim], [dim, 'failure_class']], metric_selectors: ['^mlinfra_agent_jobs_finished_total$'] },
              { source_labels: ['job'], label_matcher: job, dimensions: [[dim]], metric_selectors: ['^mlinfra_agent_autostop_total$'] },
              { source_labels: ['job'], label_matcher: job, dimensions: [[dim, 'pipeline', 'state']], metric_selectors: [`^${HOST_METRICS.pipelineRuns}$`] },
              { source_labels: ['job'], label_matcher: job, dimensions: [[dim, 'pipeline']], metric_selectors: [`^${HOST_METRICS.pipelineLastSuccess}$`] },
              // [dim] alone: the worst feature of the cluster, for one alarm whatever the features are.
              { source_labels: ['job'], label_matcher: job, dimensions: [[dim], [dim, 'feature']], metric_selectors: [`^${HOST_METRICS.driftPsi}$`] },
            ],
          },
        },
      },
    },
  };
  const prometheus = [
    'global:',
    '  scrape_interval: 1m',
    '  scrape_timeout: 10s',
    'scrape_configs:',
    `  - job_name: ${HOST_METRICS.agentJob}`,
    '    static_configs:',
    `      - targets: ['127.0.0.1:${HOST_METRICS.localPort}']`,
    '        labels:',
    `          ${dim}: ${clusterName}`,
    '',
  ].join('\n');
  return { config: JSON.stringify(config, null, 2), prometheus };
}

/** Installs the CloudWatch agent when the image lacks it, writes its configuration and (re)starts it. */
export function awsHostMetricsScript(clusterName: string, region: string): string {
  const c = renderCloudWatchAgentConfig(clusterName);
  return `CWA_CTL=/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl
if [ ! -x "$CWA_CTL" ]; then
  case "$(uname -m)" in x86_64) CWA_ARCH=amd64 ;; aarch64) CWA_ARCH=arm64 ;; *) exit 1 ;; esac
  curl -fsSL --retry 5 --retry-delay 3 -o /tmp/amazon-cloudwatch-agent.deb "https://amazoncloudwatch-agent-${region}.s3.${region}.amazonaws.com/ubuntu/$CWA_ARCH/latest/amazon-cloudwatch-agent.deb"
  dpkg -i -E /tmp/amazon-cloudwatch-agent.deb
fi
cat > ${CWA_ETC}/mlinfra-prometheus.yaml <<'MLINFRA_EOF'
${c.prometheus}MLINFRA_EOF
cat > ${CWA_ETC}/mlinfra.json <<'MLINFRA_EOF'
${c.config}
MLINFRA_EOF
"$CWA_CTL" -a fetch-config -m ec2 -s -c file:${CWA_ETC}/mlinfra.json
# fetch-config can succeed while the agent exits on a bad section: check that it runs.
sleep 5
"$CWA_CTL" -m ec2 -a status | grep -q '"status": "running"'`;
}

/** Run on a host whose CloudWatch agent setup failed: one data point MonitoringStack alarms on. */
export function awsHostMetricsFailedScript(clusterName: string, region: string): string {
  return `aws cloudwatch put-metric-data --region ${region} --namespace ${HOST_METRICS.awsAgentNamespace} --metric-name ${HOST_METRICS.hostMetricsFailed} --dimensions ${HOST_METRICS.awsClusterDimension}=${clusterName} --value 1 --unit Count || true`;
}

/** Ops Agent user configuration: scrape the agent's /metrics (GPU metrics and syslog are Ops Agent defaults). */
export function renderOpsAgentConfig(clusterName: string): string {
  return [
    'metrics:',
    '  receivers:',
    `    ${HOST_METRICS.gcpReceiver}:`,
    '      type: prometheus',
    '      config:',
    '        scrape_configs:',
    `          - job_name: ${HOST_METRICS.agentJob}`,
    '            scrape_interval: 60s',
    '            static_configs:',
    `              - targets: ['127.0.0.1:${HOST_METRICS.localPort}']`,
    '                labels:',
    `                  ${HOST_METRICS.gcpClusterLabel}: ${clusterName}`,
    '  service:',
    '    pipelines:',
    '      mlinfra:',
    `        receivers: [${HOST_METRICS.gcpReceiver}]`,
    '',
  ].join('\n');
}

/** Installs the Ops Agent when the image lacks it, adds the agent scrape and restarts it. */
export function gcpHostMetricsScript(clusterName: string): string {
  return `if [ ! -d /etc/google-cloud-ops-agent ]; then
  curl -fsSL --retry 5 --retry-delay 3 -o /tmp/add-google-cloud-ops-agent-repo.sh https://dl.google.com/cloudagents/add-google-cloud-ops-agent-repo.sh
  bash /tmp/add-google-cloud-ops-agent-repo.sh --also-install
fi
cat > /etc/google-cloud-ops-agent/config.yaml <<'MLINFRA_EOF'
${renderOpsAgentConfig(clusterName)}MLINFRA_EOF
systemctl restart google-cloud-ops-agent`;
}
