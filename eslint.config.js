// Lint rules for the whole workspace: ESLint's and typescript-eslint's recommended sets,
// plus the project's few house rules. Formatting is Prettier's job (see .prettierrc.json).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      '**/node_modules/**',
      '.tools/**',
      'test/fixtures/**',
      '**/test/fixtures/**',
      'bench/results/**',
      '**/dist/**',
      'data/**',
      '.test-tmp/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      '@typescript-eslint/no-explicit-any': 'warn',
      'no-empty': ['error', { allowEmptyCatch: true }],
    },
  },
  {
    // The few plain-JavaScript files (the launcher, the install step) run in Node.
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
  {
    // The protocol package must load in browsers: Node built-ins only in *.node.ts files.
    files: ['packages/atproto/src/**/*.ts', 'packages/migrate/src/**/*.ts'],
    ignores: ['**/*.node.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['node:*'], message: 'Browser-safe code: move Node-only code into a *.node.ts file.' }] },
      ],
      'no-restricted-globals': ['error', { name: 'Buffer', message: 'Browser-safe code: use Uint8Array.' }],
    },
  },
);
