/**
 * Kubernetes pod labels that admit a pod through a construct's NetworkPolicy, shared by the construct
 * that writes the policy and the constructs whose pods call it.
 */

/** Pods labelled `<this>: "true"` in the cluster's namespace may call the agent (gateway) port. */
export const AGENT_CLIENT_LABEL = 'mlinfra.dev/agent-client';

/** Pods labelled `<this>: "true"` may call a ModelEndpoint on Kubernetes (its NetworkPolicy admits them). */
export const ENDPOINT_CLIENT_LABEL = 'mlinfra.dev/endpoint-client';
