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
  // Package direction: atproto stands alone, migrate builds on atproto only, and the server never
  // reaches into the migration engine or the command line. Relative paths into a sibling package
  // (`../../migrate/src/...`) are caught too, not only the package names. Source only: tests may
  // start a server of another package (the migration tests drive a Portage PDS).
  ...packageDirection(),
);

/** Imports of another package of ours, by name or by a relative path into its folder. */
function ourPackages(names, message) {
  return names.flatMap((name) => [
    { group: [`@portage/${name}`, `@portage/${name}/**`], message },
    { group: [`../**/${name}/src/**`, `../**/packages/${name}/**`], message },
  ]);
}

/**
 * One no-restricted-imports entry per package and file kind (ESLint takes a rule's options from
 * the last matching block, so each block lists every pattern that applies to its files).
 */
function packageDirection() {
  const nodeOnly = {
    group: ['node:*'],
    message: 'Browser-safe code: move Node-only code into a *.node.ts file.',
  };
  const rules = [
    {
      pkg: 'atproto',
      forbidden: ourPackages(['atproto', 'pds', 'migrate', 'cli', 'web'], 'packages/atproto imports nothing of ours.'),
      browserSafe: true,
    },
    {
      pkg: 'migrate',
      forbidden: ourPackages(['pds', 'cli', 'web'], 'packages/migrate imports @portage/atproto only.'),
      browserSafe: true,
    },
    {
      pkg: 'pds',
      forbidden: ourPackages(
        ['migrate', 'cli', 'web'],
        'packages/pds never imports the migration engine, the CLI or the web source (it serves the built files).',
      ),
      browserSafe: false,
    },
  ];
  return rules.flatMap(({ pkg, forbidden, browserSafe }) => {
    const files = [`packages/${pkg}/src/**/*.ts`];
    if (!browserSafe) return [{ files, rules: { 'no-restricted-imports': ['error', { patterns: forbidden }] } }];
    return [
      {
        // Node built-ins only in *.node.ts files: these packages must load in browsers.
        files,
        ignores: ['**/*.node.ts'],
        rules: {
          'no-restricted-imports': ['error', { patterns: [nodeOnly, ...forbidden] }],
          'no-restricted-globals': ['error', { name: 'Buffer', message: 'Browser-safe code: use Uint8Array.' }],
        },
      },
      {
        files: [`packages/${pkg}/src/**/*.node.ts`],
        rules: { 'no-restricted-imports': ['error', { patterns: forbidden }] },
      },
    ];
  });
}
