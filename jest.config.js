/** @type {import('jest').Config} */
const base = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022' } }] },
  setupFilesAfterEnv: ['<rootDir>/test/setup.ts'],
  globalSetup: '<rootDir>/test/support/global-setup.js',
  globalTeardown: '<rootDir>/test/support/global-teardown.js',
};

// Integration suites that drive real agent processes (HTTP API, CLI, failures, autostop, storage, the
// Kubernetes gateway), PyTorch, Prometheus or fault rounds: `npm run test:slow` runs them, and so does
// .ci/run; `npm test` is the fast suite (constructs, policy, examples, unit tests, the agent bundle).
// Any *.slow.test.ts is slow too.
const SLOW = [
  'runtime-agent/torch', 'runtime-agent/pipeline-example', 'runtime-agent/pipeline', 'runtime-agent/durability',
  'runtime-agent/fuzz', 'runtime-agent/prometheus', 'runtime-agent/monitoring', 'runtime-agent/bootstrap-contract',
  'runtime-agent/faults', 'runtime-agent/api', 'runtime-agent/cli', 'runtime-agent/failures', 'runtime-agent/autostop',
  'runtime-agent/gcs', 'runtime-agent/k8s-gateway', 'runtime-agent/registry', 'runtime-agent/queue-cluster', 'runtime-agent/queue-contract',
  'runtime-agent/queue-client-cli', 'runtime-agent/queue-pipeline',
].map((f) => `/test/${f}\\.test\\.ts$`);

module.exports = {
  maxWorkers: 2,
  // Global only (a project's testTimeout is ignored); the slow suites raise it on their command line.
  testTimeout: 30000,
  reporters: ['default', '<rootDir>/test/support/skip-reporter.js'],
  projects: [
    { ...base, displayName: 'fast', testMatch: ['**/*.test.ts'], testPathIgnorePatterns: ['/node_modules/', '\\.slow\\.test\\.ts$', ...SLOW] },
    { ...base, displayName: 'slow', testMatch: ['**/*.slow.test.ts', ...SLOW.map((p) => `**${p.slice(0, -'\\.test\\.ts$'.length).replace(/\\\\/g, '')}.test.ts`)] },
  ],
};
