/*
 * The import boundaries, checked by `npm run lint`
 * (docs/architecture.md, "Where things live").
 *
 * The domain is functions over data: deciders, decision modules, projections
 * and src/shared/ hold the DESIGN rules, and the live service, a rebuild and
 * an audit replay all run them. A rule that can reach a framework, a driver, a
 * file or a socket stops being a function of its inputs, so a pure module may
 * not reach any of those, directly or through a helper it imports. Ports
 * (`*.port.ts`) are interfaces and stay allowed.
 *
 * Files are selected by name, so a new `*.decider.ts`, `*.decision.ts`,
 * `*-decision.ts` or `*.projection.ts` is guarded without touching this file.
 * test/lint/boundaries.spec.ts shows each rule catching a probe.
 */
const { builtinModules } = require('node:module');

const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Pure by name, wherever they sit in src/ (and everything in src/shared/ and projections/). */
const PURE_MODULES = [
  '^src/.+\\.decider\\.ts$',
  '^src/.+[.-]decision\\.ts$',
  '^(src|projections)/.+\\.projection\\.ts$',
  '^src/shared/',
  '^projections/',
  // The projection contract (evolve, document changes) that the projections implement.
  '^src/projection-engine/projection\\.ts$',
  // The audit's chain verification: the endpoint, the CLI and the tests run the same fold.
  '^src/audit/chain-verification\\.ts$',
];
/** Specs beside a pure module may use test support; they are not the module. */
const NOT_PURE = ['\\.spec\\.ts$'];

/*
 * npm packages, matched both resolved (…/node_modules/<name>/…) and, for a
 * package that is not installed, by bare name.
 */
const npm = (names) => `(^|(^|/)node_modules/)(${names.join('|')})(/|$)`;

/** Nest and its companions, the HTTP server, the storage drivers, the mail transport. */
const FRAMEWORKS_AND_DRIVERS = npm([
  '@nestjs/[^/]+',
  'class-validator',
  'class-transformer',
  'reflect-metadata',
  'rxjs',
  'fastify',
  '@fastify/[^/]+',
  '@kurrent/[^/]+',
  'mongodb',
  'better-sqlite3',
  'nodemailer',
  'rate-limiter-flexible',
]);

/*
 * Node's built-in modules but node:crypto (hashing for deterministic ids is
 * pure). dependency-cruiser reports `node:fs` as `fs` and keeps the prefix only
 * for prefix-only modules (`node:test`, `node:sqlite`): match both shapes.
 */
const NODE_BUILTINS_BUT_CRYPTO = [
  `^(node:)?(${builtinModules
    .filter((name) => name !== 'crypto')
    .map(escape)
    .join('|')})$`,
  '^node:(?!crypto$)',
];

/**
 * The application's impure files: the command handler and idempotency keys,
 * every storage adapter (event store, read model, key store, idempotency,
 * rate limits: `sqlite-*`, `mongo-*`, `mongodb-*`, `kurrentdb-*`, `*-store.ts`),
 * the mail transport, and Nest's roles (controllers, services, modules,
 * guards, filters, interceptors, handlers). Ports end in `.port.ts` and do not match.
 */
const APPLICATION_EDGE = [
  '^src/command-handling/',
  '^src/.*/(sqlite|mongo|mongodb|kurrentdb)-[^/]+\\.ts$',
  '^src/.*-store\\.ts$',
  '^src/notifications/(mailer|mail-transport)\\.ts$',
  '^src/.+\\.(controller|service|module|guard|filter|interceptor|handler)\\.ts$',
];

/** Folders of src/ that are plumbing, not slices (see docs/architecture.md). */
const INFRASTRUCTURE = [
  'cli',
  'command-handling',
  'config',
  'crypto',
  'event-store',
  'http',
  'projection-engine',
  'read-model',
  'shared',
];
const SLICE_FOLDER = `^src/(?!(${INFRASTRUCTURE.join('|')})(/|$))[^/]+$`;

/** The two slices that share the user stream (profile and factors of one aggregate). */
const USER_STREAM_SLICES = '^src/(directory|enrollment)$';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'pure-no-framework-or-driver',
      comment:
        'A decider, decision, projection or src/shared/ module reaches Nest, the HTTP server, a storage driver or the mail transport.',
      severity: 'error',
      from: { path: PURE_MODULES, pathNot: NOT_PURE },
      to: { path: FRAMEWORKS_AND_DRIVERS, reachable: true },
    },
    {
      name: 'pure-no-io',
      comment:
        'A decider, decision, projection or src/shared/ module reaches a Node built-in other than node:crypto (files, sockets, processes, timers are I/O).',
      severity: 'error',
      from: { path: PURE_MODULES, pathNot: NOT_PURE },
      to: { path: NODE_BUILTINS_BUT_CRYPTO, reachable: true },
    },
    {
      name: 'pure-no-application-edge',
      comment:
        'A decider, decision, projection or src/shared/ module reaches the command handler, a storage adapter, the mail transport or a Nest controller/service/module.',
      severity: 'error',
      from: { path: PURE_MODULES, pathNot: NOT_PURE },
      to: { path: APPLICATION_EDGE, reachable: true },
    },
    {
      name: 'no-module-cycle',
      comment: 'Two modules import each other, directly or through others.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      // Slices form a directed graph: a cycle between two of them, even
      // through plumbing folders, fails the lint. One cycle is by design and
      // named: the user stream is one aggregate whose profile the directory
      // slice decides and whose factors the enrollment slice decides, and a
      // deactivation resets the factors and frees the seat in the same append
      // (DESIGN §3, S2; docs/architecture.md, "Where things live"). It warns
      // (the third rule), so that it stays in sight. dependency-cruiser does
      // not filter folder cycles by the folders they pass through, so the
      // exception is spelled as two rules: any cycle leaving from another
      // slice fails, and so does one leaving from those two to a third slice.
      name: 'no-slice-cycle',
      comment:
        'Two slices depend on each other (possibly through plumbing folders): shared pieces belong to the slice that owns them.',
      severity: 'error',
      scope: 'folder',
      from: { path: SLICE_FOLDER, pathNot: USER_STREAM_SLICES },
      to: { path: SLICE_FOLDER, circular: true },
    },
    {
      name: 'no-slice-cycle',
      comment:
        'Two slices depend on each other (possibly through plumbing folders): shared pieces belong to the slice that owns them.',
      severity: 'error',
      scope: 'folder',
      from: { path: USER_STREAM_SLICES },
      to: { path: SLICE_FOLDER, pathNot: USER_STREAM_SLICES, circular: true },
    },
    {
      name: 'user-stream-slices-cycle',
      comment:
        'directory ↔ enrollment: the user stream is one aggregate of the two slices, by design (see no-slice-cycle).',
      severity: 'warn',
      scope: 'folder',
      from: { path: USER_STREAM_SLICES },
      to: { path: USER_STREAM_SLICES, circular: true },
    },
  ],
  options: {
    // Type-only imports count: `import type` from Nest in a decider is a
    // boundary crossing too, even though TypeScript erases it.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
    // Anchored: packages ship their code in dist/ too (nodemailer/dist/cjs).
    exclude: { path: '^(dist|var|coverage)/' },
  },
};
