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
      // A warning while today's cycles are being removed (issue 13:
      // enrollment ↔ login, directory ↔ enrollment, config/ → the attestation
      // policy, /health → the mailer); make it an error once it is quiet.
      name: 'no-slice-cycle',
      comment:
        'Two slices depend on each other (possibly through plumbing folders): shared pieces belong to the slice that owns them.',
      severity: 'warn',
      scope: 'folder',
      from: { path: SLICE_FOLDER },
      to: { path: SLICE_FOLDER, circular: true },
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
