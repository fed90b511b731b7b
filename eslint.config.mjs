// @ts-check
import eslint from '@eslint/js';
import prettier from 'eslint-config-prettier';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: ['dist/', 'node_modules/', 'var/', 'coverage/', '**/*.js', '**/*.cjs', '**/*.mjs'],
  },
  // The web pages' scripts are our source too (plain JavaScript for the browser, no build step).
  { ignores: ['!src/web/public/*.js'] },
  eslint.configs.recommended,
  ...tseslint.configs.recommended,
  prettier,
  // Import boundaries (pure modules reach no framework, adapter or I/O) are
  // dependency-cruiser's job: .dependency-cruiser.cjs, `npm run lint:boundaries`.
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      'no-console': 'error',
    },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts', '**/*.spec.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      'no-console': 'off',
    },
  },
  {
    files: ['src/web/public/*.js'],
    languageOptions: {
      globals: globals.browser,
      parserOptions: { projectService: false, project: './src/web/public/tsconfig.json' },
    },
  },
);
