/**
 * FeatureStore on Kubernetes: Redis as a StatefulSet (password in a Secret, ingress only from
 * labelled clients and grantees), the offline store and registry on a bucket you pass or a volume.
 */
import { Token } from 'cdktf';
import { Construct } from 'constructs';
import { NetworkPolicyV1 } from '@cdktf/provider-kubernetes/lib/network-policy-v1';
import { PersistentVolumeClaimV1 } from '@cdktf/provider-kubernetes/lib/persistent-volume-claim-v1';
import { RoleBindingV1 } from '@cdktf/provider-kubernetes/lib/role-binding-v1';
import { RoleV1 } from '@cdktf/provider-kubernetes/lib/role-v1';
import { SecretV1 } from '@cdktf/provider-kubernetes/lib/secret-v1';
import { ServiceV1 } from '@cdktf/provider-kubernetes/lib/service-v1';
import { StatefulSetV1 } from '@cdktf/provider-kubernetes/lib/stateful-set-v1';
import { Errors } from '../../core/errors';
import { IGrantable, kubernetesPeer } from '../../core/grants';
import { generatedSecret } from '../../core/secrets';
import { KubernetesTarget } from '../../core/targets';
import { REDIS_PASSWORD_REF } from './feast';
import type { FeatureStoreProps } from './index';
import { checkInt, FeatureStoreBackend, FeatureStorePlan, FeatureStoreTargetBackend, FeatureView, principalOn, refuseUnless } from './types';

/** Where the Redis pod mounts its configuration (from the password Secret). */
export const REDIS_CONFIG_DIR = '/etc/redis-mlinfra';

/** The server's configuration file: the password as a config directive (generated: letters and digits only). */
export function redisServerConfig(password: string): string {
  return `requirepass ${password}\n`;
}

/** Pods carrying this label (value "true") in the store's namespace may reach Redis. */
export const FEATURE_STORE_CLIENT_LABEL = 'mlinfra.dev/feature-store-client';
/** Where pods are expected to mount the offline volume (the paths in feature_store.yaml assume it). */
export const FEAST_DATA_PATH = '/var/lib/feast';
export const REDIS_PORT = 6379;
/** The official redis images' `redis` user and group. */
const REDIS_UID = '999';
const REDIS_GID = '1000';

export interface KubernetesFeatureStoreResources {
  /** Holds the Redis password (key `password`). */
  readonly secret: SecretV1;
  readonly statefulSet: StatefulSetV1;
  readonly service: ServiceV1;
  readonly networkPolicy: NetworkPolicyV1;
  /** The offline store and registry volume (when no `offlineUri` was given). */
  readonly offlineVolumeClaim?: PersistentVolumeClaimV1;
}

/** What the Kubernetes backend resolved from the props. */
interface KubernetesFeatureStorePlan extends FeatureStorePlan {
  readonly offlineUri?: string;
  readonly redisImage: string;
  readonly onlineStorageGiB: number;
  readonly offlineStorageGiB: number;
}

/** FeatureStore on Kubernetes: a Redis StatefulSet online, a bucket or a volume offline. */
export const KUBERNETES_FEATURE_STORE: FeatureStoreTargetBackend<KubernetesTarget> = {
  online: ['redis'],
  build(store, target, props, plan) {
    return buildKubernetesFeatureStore(store, target, checkKubernetes(store, props, plan));
  },
};

/** The Kubernetes rules: checked before anything is created. */
function checkKubernetes(store: Construct, props: FeatureStoreProps, plan: FeatureStorePlan): KubernetesFeatureStorePlan {
  refuseUnless(store, props, 'offlineStorageGiB', props.offlineUri === undefined, 'kubernetes targets without offlineUri', 'kubernetes', plan.online);
  const uri = props.offlineUri;
  if (uri !== undefined && !Token.isUnresolved(uri) && !/^(s3|gs):\/\/[a-z0-9][a-z0-9._-]{1,61}[a-z0-9](\/[A-Za-z0-9._\-/]*)?$/.test(uri)) {
    throw Errors.invalid(store, 'offlineUri', uri, 's3://bucket[/prefix] or gs://bucket[/prefix]');
  }
  const redisImage = props.redisImage ?? 'redis:7.4-alpine';
  if (!Token.isUnresolved(redisImage) && !/^[a-z0-9][a-zA-Z0-9._/:@-]*$/.test(redisImage)) {
    throw Errors.invalid(store, 'redisImage', redisImage, 'a container image reference such as redis:7.4-alpine');
  }
  const onlineStorageGiB = props.onlineStorageGiB ?? 10;
  checkInt(store, 'onlineStorageGiB', onlineStorageGiB, 1, 16384, 'GiB');
  const offlineStorageGiB = props.offlineStorageGiB ?? 100;
  checkInt(store, 'offlineStorageGiB', offlineStorageGiB, 1, 65536, 'GiB');
  // A trailing slash would double in every path built from the URI.
  const offlineUri = uri === undefined || Token.isUnresolved(uri) ? uri : uri.replace(/\/+$/, '');
  return { ...plan, offlineUri, redisImage, onlineStorageGiB, offlineStorageGiB };
}

/** A quantity in GiB; a Terraform value stays a reference (a number token in a template would write its encoding). */
const gib = (n: number): string => `${Token.isUnresolved(n) ? Token.asString(n) : n}Gi`;

function buildKubernetesFeatureStore(store: Construct, target: KubernetesTarget, plan: KubernetesFeatureStorePlan): FeatureStoreBackend {
  const provider = target.provider;
  const namespace = target.namespace;
  const selectorLabels = { 'app.kubernetes.io/name': 'feast-online-redis', 'app.kubernetes.io/instance': plan.name };
  const labels = { ...target.labels, ...selectorLabels };
  const meta = (name: string) => ({ name, namespace, labels: { ...labels } });

  // ---- offline: the user's bucket, or a volume
  const offline = new Construct(store, 'offline');
  const offlineVolumeClaim = plan.offlineUri ? undefined : new PersistentVolumeClaimV1(offline, 'volume', {
    provider, metadata: { name: `${plan.name}-offline`, namespace, labels: { ...target.labels, 'app.kubernetes.io/name': 'feast-offline', 'app.kubernetes.io/instance': plan.name } },
    // Bound when the first pod mounts it: the volume lands in that pod's zone.
    waitUntilBound: false,
    spec: {
      accessModes: ['ReadWriteOnce'], storageClassName: target.storageClassName,
      resources: { requests: { storage: gib(plan.offlineStorageGiB) } },
    },
  });
  const offlineUri = plan.offlineUri ?? `file://${FEAST_DATA_PATH}/offline`;
  const registryUri = plan.offlineUri ? `${plan.offlineUri}/registry.db` : `${FEAST_DATA_PATH}/registry.db`;

  // ---- online: Redis
  const online = new Construct(store, 'online');
  const password = generatedSecret(online, 'password');
  // `password` for clients; `redis-conf` for the server, which reads the password from this file:
  // on its command line it would show in every process listing (/proc/<pid>/cmdline).
  const secret = new SecretV1(online, 'password-secret', {
    provider, metadata: meta(`${plan.name}-redis`), type: 'Opaque',
    data: { 'password': password.result, 'redis-conf': redisServerConfig(password.result) },
  });
  const service = new ServiceV1(online, 'service', {
    provider, metadata: meta(`${plan.name}-redis`),
    spec: { type: 'ClusterIP', selector: { ...selectorLabels }, port: [{ name: 'redis', port: REDIS_PORT, targetPort: 'redis', protocol: 'TCP' }] },
  });
  const redisPort = [{ port: String(REDIS_PORT), protocol: 'TCP' }];
  const networkPolicy = new NetworkPolicyV1(online, 'policy', {
    provider, metadata: meta(`${plan.name}-redis`),
    spec: {
      podSelector: { matchLabels: { ...selectorLabels } },
      policyTypes: ['Ingress'],
      ingress: [{ from: [{ podSelector: { matchLabels: { [FEATURE_STORE_CLIENT_LABEL]: 'true' } } }], ports: redisPort }],
    },
  });
  const securityContext = {
    runAsNonRoot: true, runAsUser: REDIS_UID, runAsGroup: REDIS_GID, allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' },
  };
  const statefulSet = new StatefulSetV1(online, 'redis', {
    provider, metadata: meta(`${plan.name}-redis`),
    spec: {
      replicas: '1', serviceName: service.metadata.name,
      selector: { matchLabels: { ...selectorLabels } },
      persistentVolumeClaimRetentionPolicy: [{ whenScaled: 'Retain', whenDeleted: 'Retain' }],
      template: {
        metadata: { labels: { ...labels } },
        spec: {
          automountServiceAccountToken: false, enableServiceLinks: false,
          securityContext: { runAsNonRoot: true, runAsUser: REDIS_UID, runAsGroup: REDIS_GID, fsGroup: REDIS_GID, seccompProfile: { type: 'RuntimeDefault' } },
          container: [{
            name: 'redis', image: plan.redisImage,
            // The password comes from the mounted config file, never from the command line or the spec.
            command: ['redis-server', `${REDIS_CONFIG_DIR}/redis.conf`, '--appendonly', 'yes', '--dir', '/data', '--protected-mode', 'yes'],
            port: [{ name: 'redis', containerPort: REDIS_PORT, protocol: 'TCP' }],
            resources: { requests: { cpu: '250m', memory: '512Mi' }, limits: { cpu: '1', memory: '1Gi' } },
            readinessProbe: { tcpSocket: [{ port: 'redis' }], periodSeconds: 10 },
            livenessProbe: { tcpSocket: [{ port: 'redis' }], periodSeconds: 20, failureThreshold: 6, initialDelaySeconds: 15 },
            securityContext,
            volumeMount: [{ name: 'data', mountPath: '/data' }, { name: 'tmp', mountPath: '/tmp' }, { name: 'config', mountPath: REDIS_CONFIG_DIR, readOnly: true }],
          }],
          volume: [
            { name: 'tmp', emptyDir: {} },
            // Group-readable for fsGroup (the redis user), nobody else.
            { name: 'config', secret: { secretName: secret.metadata.name, defaultMode: '0440', items: [{ key: 'redis-conf', path: 'redis.conf' }] } },
          ],
        },
      },
      volumeClaimTemplate: [{
        metadata: { name: 'data', labels: { ...labels } },
        spec: { accessModes: ['ReadWriteOnce'], storageClassName: target.storageClassName, resources: { requests: { storage: gib(plan.onlineStorageGiB) } } },
      }],
    },
  });
  const onlineEndpoint = `${service.metadata.name}.${namespace}.svc.cluster.local:${REDIS_PORT}`;
  const views: FeatureView[] = [];

  const feastConfig: Record<string, unknown> = {
    project: plan.project,
    registry: registryUri,
    provider: 'local',
    // In-cluster traffic, no TLS: the NetworkPolicy limits who can connect, AUTH who can use it.
    online_store: { type: 'redis', redis_type: 'redis', connection_string: `${onlineEndpoint},password=${REDIS_PASSWORD_REF}` },
    offline_store: { type: 'file' },
    entity_key_serialization_version: 3,
  };

  // ---- grants: read the password Secret; reach Redis from the grantee's namespace
  let grants: Construct | undefined;
  const grant = (grantee: IGrantable, grantId: string, what: string) => {
    const p = principalOn(store, what, 'kubernetes', grantee);
    const scope = new Construct((grants ??= new Construct(store, 'grants')), grantId);
    const role = new RoleV1(scope, 'role', {
      provider, metadata: meta(grantId),
      rule: [{ apiGroups: [''], resources: ['secrets'], resourceNames: [secret.metadata.name], verbs: ['get'] }],
    });
    new RoleBindingV1(scope, 'binding', {
      provider, metadata: meta(grantId),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.metadata.name },
      subject: [{ kind: 'ServiceAccount', name: p.serviceAccountName, namespace: p.namespace }],
    });
    // The grantee's own pods when it names their labels, else its namespace's client-labelled pods.
    new NetworkPolicyV1(scope, 'ingress', {
      provider, metadata: meta(grantId),
      spec: {
        podSelector: { matchLabels: { ...selectorLabels } },
        policyTypes: ['Ingress'],
        ingress: [{
          from: [kubernetesPeer(p, FEATURE_STORE_CLIENT_LABEL)],
          ports: redisPort,
        }],
      },
    });
  };

  return {
    offlineUri, registryUri, feastConfig, onlineEndpoint,
    onlinePasswordSecret: { store: 'kubernetes-secret', namespace, name: secret.metadata.name, key: 'password' },
    addView(view) {
      // Redis needs no table per view; Feast keys entries by project and entity.
      views.push(view);
    },
    onlineTableNames: () => [],
    offlineTableName: (view) => `${offlineUri}/${view.prefix}`,
    // Redis AUTH does not tell readers from writers: both grants give the same access.
    grantRead: (g, id) => grant(g, id, 'grantRead'),
    grantWrite: (g, id) => grant(g, id, 'grantWrite'),
    kubernetes: { secret, statefulSet, service, networkPolicy, offlineVolumeClaim },
  };
}
