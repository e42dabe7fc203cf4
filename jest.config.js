/** @type {import('jest').Config} */
const base = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022' } }] },
  setupFilesAfterEnv: ['<rootDir>/test/setup.ts'],
  testTimeout: 30000,
};

// The fast suite is `npm test`; *.slow.test.ts (long fault and failover rounds) run with `npm run test:slow`.
module.exports = {
  maxWorkers: 2,
  globalSetup: '<rootDir>/test/support/global-setup.js',
  globalTeardown: '<rootDir>/test/support/global-teardown.js',
  reporters: ['default', '<rootDir>/test/support/skip-reporter.js'],
  projects: [
    { ...base, displayName: 'fast', testMatch: ['**/*.test.ts'], testPathIgnorePatterns: ['/node_modules/', '\\.slow\\.test\\.ts$'] },
    { ...base, displayName: 'slow', testMatch: ['**/*.slow.test.ts'], testTimeout: 600000 },
  ],
};
