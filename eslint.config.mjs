// Lint rules that protect load time and the agent bundle's independence (DESIGN §2, §3).
import tseslint from 'typescript-eslint';

const barrels = ['aws', 'google', 'kubernetes', 'random'].map((p) => ({
  name: `@cdktf/provider-${p}`,
  message: `Import from '@cdktf/provider-${p}/lib/<resource>': the barrel costs seconds and ~1 GB per process.`,
}));

export default tseslint.config(
  { ignores: ['node_modules/**', 'lib/**', 'dist/**', 'cdktf.out/**', 'coverage/**'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { paths: barrels }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // Backends and provider classes are required on first use of their target (src/core/lazy.ts).
    files: ['src/core/**/*.ts', 'src/constructs/**/*.ts', 'src/aspects/**/*.ts', 'src/stacks/**/*.ts'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // Plain CommonJS files that jest and node load directly (global setup, reporter, a require hook).
    files: ['test/support/*.js'],
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', module: 'writable', process: 'readonly', __dirname: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // Tests walk synthesized Terraform JSON, whose shape is the provider's, not ours.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: barrels,
        patterns: [{ group: ['**/constructs/**'], message: 'core/ is shared by every construct and imports nothing from constructs/.' }],
      }],
    },
  },
  {
    files: ['src/runtime-agent/**/*.ts'],
    rules: {
      'no-console': 'error',
      'no-restricted-imports': ['error', {
        paths: [
          ...barrels,
          { name: 'cdktf', message: 'The agent ships to hosts as one small bundle: no cdktf.' },
          { name: 'constructs', message: 'The agent ships to hosts as one small bundle: no constructs.' },
        ],
        patterns: [
          { group: ['cdktf/*', 'constructs/*', '@cdktf/*'], message: 'The agent must not import cdktf or providers.' },
          { group: ['**/constructs/**', '**/core/**'], message: 'The agent must not import src/constructs or src/core (keep it self-contained).' },
        ],
      }],
    },
  },
);
