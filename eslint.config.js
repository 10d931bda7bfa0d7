// The linter in the test command: type-aware checks for promises nobody awaits or catches
// (a daemon's failure must be caught at its own boundary) and imports of packages that
// package.json does not declare.
import n from 'eslint-plugin-n';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.tools/', 'native/build/', 'bench/results/'] },
  {
    files: ['**/*.ts', '**/*.tsx'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { '@typescript-eslint': tseslint.plugin, n },
    settings: { n: { tryExtensions: ['.ts', '.tsx', '.js'] } },
    rules: {
      '@typescript-eslint/no-floating-promises': ['error', { ignoreVoid: false }],
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { attributes: false } }],
      'n/no-extraneous-import': 'error',
    },
  },
);
