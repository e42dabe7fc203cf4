import { block, blocks } from '../attrs';
import { referencesIn } from '../context';
import { containers, podTemplate, POD_TYPES } from '../kubernetes';
import { nonCompliant, PolicyRule } from '../types';

const SECRET_NAME = /(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL)/i;
const SECRET_VALUE = /(AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----|gh[pousr]_[A-Za-z0-9]{30,}|xox[abp]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9]{20,})/;
/** References whose value is a secret: generated passwords, secret versions, Kubernetes secret data. */
const SECRET_REFS = [/^random_password\./, /^(data\.)?aws_secretsmanager_secret_version\./, /^(data\.)?google_secret_manager_secret_version\./, /^(data\.)?kubernetes_secret(_v1)?\./];

export const rule: PolicyRule = {
  id: 'k8s-secrets-not-in-env',
  level: 'error',
  description: 'secret written as a literal environment value: visible to anyone who can read the pod spec, and in Terraform state',
  fix: 'put the value in a kubernetes_secret_v1 and use env { value_from { secret_key_ref { name, key } } } or mount it as a file',
  appliesTo: POD_TYPES,
  check(el) {
    const pod = podTemplate(el);
    if (!pod) return 'not-applicable';
    const bad = containers(pod.spec).flatMap((c) => blocks(c.attrs.env).flatMap((e) => {
      const value = e.value;
      if (block(e.value_from) || typeof value !== 'string' || value === '') return [];
      const refs = referencesIn(value);
      const secretRef = refs.some((r) => SECRET_REFS.some((p) => p.test(r)));
      // A name like API_TOKEN holding a reference (a URL, a path) is fine; a literal is not.
      const literalSecret = SECRET_NAME.test(String(e.name)) && !refs.length && !/^(\/|file:|https?:)/.test(value);
      return secretRef || literalSecret || SECRET_VALUE.test(value) ? [`${c.name}: ${String(e.name)}`] : [];
    }));
    return bad.length ? nonCompliant(`literal secret in env ${bad.join(', ')}`) : 'compliant';
  },
};
