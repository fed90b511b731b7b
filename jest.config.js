/**
 * Some dependencies ship ESM only (otplib's @noble and @scure, the case-folding
 * table of src/shared/search-folding.ts). Node 20.19+
 * requires them natively, Jest does not: those few are transformed to
 * CommonJS by ts-jest.
 * @type {import('jest').Config}
 */
const esmOnly = ['@noble', '@scure', 'unicode-case-folding'];

module.exports = {
  testEnvironment: 'node',
  rootDir: '.',
  roots: ['<rootDir>/test', '<rootDir>/src', '<rootDir>/projections'],
  testMatch: ['**/*.spec.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.json' }],
    [`node_modules/(${esmOnly.join('|')})/.+\\.js$`]: [
      'ts-jest',
      { tsconfig: { allowJs: true, module: 'commonjs' }, diagnostics: false },
    ],
  },
  transformIgnorePatterns: [`/node_modules/(?!(${esmOnly.join('|')})/)`],
  testTimeout: 30000,
  // The multi-process tests spawn the built service; they share the two cores.
  maxWorkers: 2,
};
