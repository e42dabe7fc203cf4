// Lint rules that protect load time, the agent bundle's independence and the layers (DESIGN §2, §3, §4).
import tseslint from 'typescript-eslint';

const barrels = ['aws', 'google', 'kubernetes', 'random'].map((p) => ({
  name: `@cdktf/provider-${p}`,
  message: `Import from '@cdktf/provider-${p}/lib/<resource>': the barrel costs seconds and ~1 GB per process.`,
}));

// Layers (DESIGN §2, §4). Each rule is stated once, as an import-path regex, and checked on `import`,
// `export ... from` (no-restricted-imports) and on the lazy `require('...')` calls (no-restricted-syntax).
const LAYERS = {
  // From src/constructs/<c>/<file>.ts: another construct's module other than its index.
  otherConstructInternals: {
    regex: '^\\.\\.\\x2F(?!\\.)[^\\x2F]+\\x2F(?!index$)[^\\x2F]+$',
    message: 'A construct uses another only through its public index (`../<construct>`): its interface, grants and attributes, never its files.',
  },
  aspects: { regex: '^\\.\\.?\\x2F(.*\\x2F)?aspects(\\x2F|$)', message: 'Constructs never import aspects/: aspects run over constructs, not the other way round.' },
  // From src/aspects/**: a construct's file other than its index (backends, plans).
  constructBackend: {
    regex: '^\\.\\.?\\x2F(.*\\x2F)?constructs\\x2F[^\\x2F]+\\x2F(?!index$)[^\\x2F]+$',
    message: 'aspects/ reads constructs through their public index and construct metadata (core/facts.ts), never a backend.',
  },
  constructs: { regex: '^\\.\\.?\\x2F(.*\\x2F)?constructs(\\x2F|$)', message: 'core/ is shared by every construct and imports nothing from constructs/.' },
};
const restrictImports = (...rules) => ['error', { paths: barrels, patterns: rules.map((r) => ({ regex: r.regex, message: r.message })) }];
// Slashes are written \x2F in the regexes above: esquery's /regex/ cannot hold a `/`.
const requireOf = (r) => ({
  selector: `CallExpression[callee.name='require'][arguments.0.value=/${r.regex}/]`,
  message: r.message,
});
// `new Error(...)` and friends in the library: errors come from the factories in core/errors.ts (stable
// code, construct path, prop, value, what is allowed). Text inside template literals is not code: exempt.
const bareErrors = ['Error', 'RangeError', 'TypeError'].flatMap((name) => [
  { selector: `NewExpression[callee.name='${name}']`, message: `No bare ${name} in src/constructs or src/core: throw MlInfraError through a factory in core/errors.ts.` },
  { selector: `CallExpression[callee.name='${name}']`, message: `No bare ${name}() in src/constructs or src/core: throw MlInfraError through a factory in core/errors.ts.` },
]);

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
    files: ['src/core/**/*.ts', 'src/constructs/**/*.ts', 'src/aspects/**/*.ts', 'src/stacks/**/*.ts', 'src/contracts/**/*.ts'],
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
    files: ['src/constructs/**/*.ts'],
    rules: {
      'no-restricted-imports': restrictImports(LAYERS.otherConstructInternals, LAYERS.aspects),
      'no-restricted-syntax': ['error', requireOf(LAYERS.otherConstructInternals), requireOf(LAYERS.aspects), ...bareErrors],
    },
  },
  {
    files: ['src/aspects/**/*.ts'],
    rules: {
      'no-restricted-imports': restrictImports(LAYERS.constructBackend),
      'no-restricted-syntax': ['error', requireOf(LAYERS.constructBackend)],
    },
  },
  {
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': restrictImports(LAYERS.constructs),
      'no-restricted-syntax': ['error', requireOf(LAYERS.constructs), ...bareErrors],
    },
  },
  {
    // Contracts are imported by the construct library and bundled into the agent: plain TypeScript and
    // Node built-ins at run time. Type-only imports of cdktf/constructs are erased, so they are allowed.
    files: ['src/contracts/**/*.ts'],
    rules: {
      'no-console': 'error',
      'no-restricted-imports': 'off',
      '@typescript-eslint/no-restricted-imports': ['error', {
        paths: [
          ...barrels,
          { name: 'cdktf', message: 'Contracts are bundled into the agent: no cdktf at run time (import type is fine).', allowTypeImports: true },
          { name: 'constructs', message: 'Contracts are bundled into the agent: no constructs at run time (import type is fine).', allowTypeImports: true },
        ],
        patterns: [
          { group: ['cdktf/*', 'constructs/*', '@cdktf/*'], message: 'Contracts are bundled into the agent: no cdktf or providers.' },
          { group: ['**/constructs/**', '**/core/**', '**/aspects/**', '**/runtime-agent/**'], message: 'A contract imports neither side it connects.' },
        ],
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
          { group: ['**/constructs/**', '**/core/**'], message: 'The agent must not import src/constructs or src/core (keep it self-contained; shared contracts live in src/contracts).' },
        ],
      }],
    },
  },
);
