import fc from 'fast-check';
import jwt from 'jsonwebtoken';
import { createHmac } from 'node:crypto';
import { CapturingLogger, startService, TEST_JWT_SECRET, token } from './harness';
import { activeFirm, enrollTotp, registerUser } from './mfa';
import { mailSettled } from './notifications';
import { parseResponse, portOf, exchange } from './raw-http';

/*
 * A generated fuzzer over every route of the service's own /openapi.json
 * (docs/security.md "Fuzzing"). Each case takes one operation, builds a
 * plausible request from its description (path ids, a token of a role it
 * allows, a body with every property of its schema), then applies one to
 * three mutations, at least one of which makes the request invalid whatever
 * the rest is: no token or a bad one, a bad path id, an unknown or
 * prototype-named field, nesting too deep, bytes that are not UTF-8, a NUL
 * outside strings, a property of the wrong type or missing, a string or array
 * past its bounds, an unknown query parameter, a wrong media type.
 *
 * Every answer must be a 4xx problem+json without a stack trace, the service
 * must log nothing at error level, and the log head must not move. Requests go
 * over bare sockets (fetch would refuse some of them) to 127.0.0.1 only.
 */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

interface Schema {
  type?: string;
  $ref?: string;
  enum?: Json[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  maxLength?: number;
  allOf?: Schema[];
}

interface OpenApiOperation {
  parameters?: Array<{ name: string; in: string; required?: boolean; schema?: Schema }>;
  requestBody?: { content?: Record<string, { schema?: Schema }> };
  'x-roles'?: string[];
}

interface OpenApiDocument {
  paths: Record<string, Record<string, OpenApiOperation>>;
  components?: { schemas?: Record<string, Schema> };
}

/** One route of the description, resolved to what the fuzzer needs. */
export interface FuzzOperation {
  method: string;
  template: string;
  pathParams: string[];
  queryParams: string[];
  roles: string[];
  /** The body's schema with references resolved, or undefined when the route takes none. */
  body?: Schema;
}

const ROLES = ['operator', 'superuser', 'host', 'user', 'auditor'];
const PROTOTYPE_NAMES = Object.getOwnPropertyNames(Object.prototype);
const FIRM = 'acme';
const USER = 'u1';
const SAMPLE_IDS: Record<string, string> = {
  firmId: FIRM,
  userId: USER,
  corporationId: 'corp-1',
  enrollmentId: 'enr-1',
};

export function operationsOf(document: OpenApiDocument): FuzzOperation[] {
  const resolve = (schema: Schema | undefined, depth = 0): Schema | undefined => {
    if (!schema || depth > 10) return schema;
    if (schema.$ref) {
      const name = schema.$ref.split('/').pop()!;
      return resolve(document.components?.schemas?.[name], depth + 1);
    }
    if (schema.allOf?.length === 1) return resolve(schema.allOf[0], depth + 1);
    const properties = schema.properties
      ? Object.fromEntries(
          Object.entries(schema.properties).map(([key, value]) => [
            key,
            resolve(value, depth + 1)!,
          ]),
        )
      : undefined;
    const items = schema.items ? resolve(schema.items, depth + 1) : undefined;
    return { ...schema, ...(properties ? { properties } : {}), ...(items ? { items } : {}) };
  };
  return Object.entries(document.paths).flatMap(([template, item]) =>
    Object.entries(item)
      .filter(([method]) => ['get', 'put', 'post', 'delete'].includes(method))
      .map(([method, operation]) => ({
        method: method.toUpperCase(),
        template,
        pathParams: (operation.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name),
        queryParams: (operation.parameters ?? [])
          .filter((p) => p.in === 'query')
          .map((p) => p.name),
        roles: operation['x-roles'] ?? [],
        body: resolve(operation.requestBody?.content?.['application/json']?.schema),
      })),
  );
}

/** A value that fits `schema` in shape (not necessarily in every rule). */
function plausible(schema: Schema | undefined, depth = 0): Json {
  if (!schema || depth > 6) return 'x';
  if (schema.enum?.length) return schema.enum[0];
  switch (schema.type) {
    case 'string':
      return 'x1';
    case 'integer':
    case 'number':
      return 1;
    case 'boolean':
      return true;
    case 'array':
      return [];
    default:
      return Object.fromEntries(
        Object.entries(schema.properties ?? {}).map(([key, value]) => [
          key,
          plausible(value, depth + 1),
        ]),
      );
  }
}

/** A JSON value of another type than `schema` says, never null (null reads as "absent" when optional). */
function wrongTypeFor(schema: Schema | undefined): fc.Arbitrary<Json> {
  const type = schema?.enum ? 'enum' : (schema?.type ?? 'object');
  const choices: Array<fc.Arbitrary<Json>> = [];
  if (type !== 'string' && type !== 'enum') choices.push(fc.string({ maxLength: 20 }));
  if (type === 'enum')
    choices.push(fc.string({ maxLength: 20 }).filter((s) => !schema!.enum!.includes(s)));
  if (type !== 'integer' && type !== 'number')
    choices.push(fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true })));
  if (type === 'integer') choices.push(fc.constantFrom<Json>(2.5, -0.5, 1e300));
  if (type !== 'boolean') choices.push(fc.boolean());
  if (type !== 'array') choices.push(fc.array(fc.integer(), { maxLength: 3 }));
  if (type !== 'object') choices.push(fc.constant<Json>({ a: 1 }));
  return fc.oneof(...choices);
}

export type Mutation =
  | { kind: 'token'; variant: TokenVariant }
  | { kind: 'path-id'; param: string; value: string }
  | { kind: 'extra-field'; name: string; value: Json }
  | { kind: 'prototype-key'; name: string; nested: boolean }
  | { kind: 'deep-nesting'; depth: number; objects: boolean }
  | { kind: 'invalid-utf8'; bytes: readonly number[] }
  | { kind: 'nul-outside-strings' }
  | { kind: 'wrong-type'; property: string; value: Json }
  | { kind: 'missing-required'; property: string }
  | { kind: 'huge-string'; property: string; length: number }
  | { kind: 'huge-array'; property: string; length: number }
  | { kind: 'unknown-query'; name: string; value: string }
  | { kind: 'bad-min-position'; value: string }
  | { kind: 'media-type'; value: string };

type TokenVariant =
  | 'none'
  | 'garbage'
  | 'expired'
  | 'wrong-secret'
  | 'alg-none'
  | 'iat-string'
  | 'iat-future'
  | 'no-exp'
  | 'wrong-role'
  | 'other-firm';

/** Noise that need not make a request invalid, added on top of an invalidating mutation. */
export type Noise =
  | { kind: 'correlation-id'; value: string }
  | { kind: 'idempotency-key'; value: string }
  | { kind: 'query'; name: string; value: string };

export interface FuzzCase {
  operation: FuzzOperation;
  mutations: Mutation[];
  noise: Noise[];
}

const badIds = fc.oneof(
  fc.constantFrom(
    '.',
    '..',
    '%2e%2e',
    '%2E.',
    'a%00b',
    '%00',
    'a%20b',
    'a%2Fb',
    '%C3%A9',
    '%FF',
    '%E2%80%AE',
    'a'.repeat(129),
    'a'.repeat(600),
    '%2e%2e%2f%2e%2e',
    '<script>',
  ),
  fc
    .string({ unit: 'grapheme', minLength: 1, maxLength: 20 })
    .filter((s) => !/^[A-Za-z0-9._:-]+$/.test(s))
    .map((s) => encodeURIComponent(s)),
);

const fieldNames = fc.oneof(
  fc.stringMatching(/^[a-z][a-zA-Z0-9]{0,15}$/),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }),
);

function invalidatingMutations(operation: FuzzOperation): Array<fc.Arbitrary<Mutation>> {
  const list: Array<fc.Arbitrary<Mutation>> = [];
  if (operation.roles.length > 0) {
    const variants: TokenVariant[] = [
      'none',
      'garbage',
      'expired',
      'wrong-secret',
      'alg-none',
      'iat-string',
      'iat-future',
      'no-exp',
    ];
    if (ROLES.some((role) => !operation.roles.includes(role))) variants.push('wrong-role');
    if (operation.pathParams.includes('firmId')) variants.push('other-firm');
    list.push(fc.constantFrom(...variants).map((variant) => ({ kind: 'token' as const, variant })));
  }
  if (operation.pathParams.length > 0) {
    list.push(
      fc.record({
        kind: fc.constant('path-id' as const),
        param: fc.constantFrom(...operation.pathParams),
        value: badIds,
      }),
    );
  }
  if (operation.body) {
    const known = new Set(Object.keys(operation.body.properties ?? {}));
    list.push(
      fc.record({
        kind: fc.constant('extra-field' as const),
        name: fieldNames.filter((name) => !known.has(name) && !PROTOTYPE_NAMES.includes(name)),
        value: fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>,
      }),
      fc.record({
        kind: fc.constant('prototype-key' as const),
        name: fc.constantFrom(...PROTOTYPE_NAMES),
        nested: fc.boolean(),
      }),
      fc.record({
        kind: fc.constant('deep-nesting' as const),
        depth: fc.oneof(fc.integer({ min: 33, max: 64 }), fc.integer({ min: 1000, max: 10_000 })),
        objects: fc.boolean(),
      }),
      fc.record({
        kind: fc.constant('invalid-utf8' as const),
        bytes: fc.constantFrom(
          [0xff],
          [0x80],
          [0xc0, 0xaf],
          [0xed, 0xa0, 0x80],
          [0xe2, 0x82],
          [0xf8, 0x88, 0x80, 0x80, 0x80],
        ),
      }),
      fc.constant({ kind: 'nul-outside-strings' as const }),
      fc.record({
        kind: fc.constant('media-type' as const),
        value: fc.constantFrom(
          'text/plain',
          'application/x-www-form-urlencoded',
          'multipart/form-data; boundary=x',
          'application/xml',
        ),
      }),
    );
    const properties = Object.entries(operation.body.properties ?? {});
    if (properties.length > 0) {
      list.push(
        fc
          .constantFrom(...properties)
          .chain(([property, schema]) =>
            wrongTypeFor(schema).map((value) => ({ kind: 'wrong-type' as const, property, value })),
          ),
        fc.record({
          kind: fc.constant('huge-array' as const),
          property: fc.constantFrom(...properties.map(([name]) => name)),
          length: fc.integer({ min: 10_000, max: 40_000 }),
        }),
      );
      const strings = properties.filter(([, schema]) => schema.type === 'string' && !schema.enum);
      if (strings.length > 0) {
        list.push(
          fc.record({
            kind: fc.constant('huge-string' as const),
            property: fc.constantFrom(...strings.map(([name]) => name)),
            length: fc.integer({ min: 70 * 1024, max: 300 * 1024 }),
          }),
        );
      }
    }
    const required = operation.body.required ?? [];
    if (required.length > 0) {
      list.push(
        fc.record({
          kind: fc.constant('missing-required' as const),
          property: fc.constantFrom(...required),
        }),
      );
    }
  }
  if (operation.queryParams.length > 0) {
    const known = new Set(operation.queryParams);
    list.push(
      fc.record({
        kind: fc.constant('unknown-query' as const),
        name: fc
          .oneof(fc.constantFrom(...PROTOTYPE_NAMES), fieldNames)
          .filter((name) => !known.has(name)),
        value: fc.string({ maxLength: 30 }),
      }),
    );
    if (known.has('minPosition')) {
      list.push(
        fc.record({
          kind: fc.constant('bad-min-position' as const),
          value: fc.constantFrom('-1', 'abc', '1.5', '9'.repeat(25), '0x10', ' 1', '1e3', ''),
        }),
      );
    }
  }
  return list;
}

const noise: fc.Arbitrary<Noise> = fc.oneof(
  fc.record({ kind: fc.constant('correlation-id' as const), value: fc.string({ maxLength: 200 }) }),
  fc.record({
    kind: fc.constant('idempotency-key' as const),
    value: fc.string({ maxLength: 300 }),
  }),
  fc.record({
    kind: fc.constant('query' as const),
    name: fc.constant('minPosition'),
    value: fc.constantFrom('1', '0'),
  }),
);

/** Operations the fuzzer can make invalid: every route that takes a token, an id, a body or a query. */
export function fuzzCases(operations: FuzzOperation[]): fc.Arbitrary<FuzzCase> {
  const fuzzable = operations.filter((operation) => invalidatingMutations(operation).length > 0);
  return fc.constantFrom(...fuzzable).chain((operation) => {
    const mutations = invalidatingMutations(operation);
    return fc.record({
      operation: fc.constant(operation),
      mutations: fc.array(fc.oneof(...mutations), { minLength: 1, maxLength: 3 }),
      noise: fc.array(noise, { maxLength: 2 }),
    });
  });
}

/** The bytes of one HTTP/1.1 request for a case. */
export function requestFor(fuzzCase: FuzzCase): Buffer {
  const { operation, mutations } = fuzzCase;
  const ids = { ...SAMPLE_IDS };
  const query: Array<[string, string]> = [];
  let bearer: string | undefined = baseToken(operation.roles);
  let contentType = 'application/json';
  const body: Record<string, Json> | undefined = operation.body
    ? (plausible(operation.body) as Record<string, Json>)
    : undefined;
  let rawBody: Buffer | undefined;

  for (const mutation of mutations) {
    switch (mutation.kind) {
      case 'token':
        bearer = badToken(mutation.variant, operation.roles);
        break;
      case 'path-id':
        ids[mutation.param] = mutation.value;
        break;
      case 'extra-field':
        if (body) body[mutation.name] = mutation.value;
        break;
      case 'prototype-key':
        if (body) {
          const target = mutation.nested ? ((body.nested = {}) as Record<string, Json>) : body;
          // An own property even for __proto__, which plain assignment would take as the prototype.
          Object.defineProperty(target, mutation.name, {
            value: 1,
            enumerable: true,
            writable: true,
            configurable: true,
          });
        }
        break;
      case 'wrong-type':
        if (body) body[mutation.property] = mutation.value;
        break;
      case 'missing-required':
        if (body) delete body[mutation.property];
        break;
      case 'huge-string':
        if (body) body[mutation.property] = 'a'.repeat(mutation.length);
        break;
      case 'huge-array':
        if (body) body[mutation.property] = Array<Json>(mutation.length).fill(1);
        break;
      case 'deep-nesting': {
        const open = mutation.objects
          ? '{"a":'.repeat(mutation.depth) + '1'
          : '['.repeat(mutation.depth);
        const close = mutation.objects ? '}'.repeat(mutation.depth) : ']'.repeat(mutation.depth);
        rawBody = Buffer.from(`{"deep":${open}${close}}`);
        break;
      }
      case 'invalid-utf8':
        rawBody = Buffer.concat([
          Buffer.from('{"label":"ab'),
          Buffer.from(mutation.bytes),
          Buffer.from('cd"}'),
        ]);
        break;
      case 'nul-outside-strings':
        rawBody = Buffer.from(`${JSON.stringify(body ?? {})}\u0000`);
        break;
      case 'unknown-query':
        query.push([mutation.name, mutation.value]);
        break;
      case 'bad-min-position':
        query.push(['minPosition', mutation.value]);
        break;
      case 'media-type':
        contentType = mutation.value;
        break;
    }
  }
  for (const item of fuzzCase.noise) if (item.kind === 'query') query.push([item.name, item.value]);

  const path =
    operation.template.replace(/\{(\w+)\}/g, (_m, name: string) => ids[name] ?? 'x1') +
    (query.length > 0
      ? '?' +
        query
          .map(([name, value]) => `${encodeURIComponent(name)}=${encodeURIComponent(value)}`)
          .join('&')
      : '');
  const payload = rawBody ?? (body !== undefined ? Buffer.from(JSON.stringify(body)) : undefined);
  const headers: Array<[string, string]> = [
    ['Host', '127.0.0.1'],
    ['Connection', 'close'],
  ];
  if (bearer !== undefined) headers.push(['Authorization', `Bearer ${bearer}`]);
  if (payload)
    headers.push(['Content-Type', contentType], ['Content-Length', String(payload.length)]);
  for (const item of fuzzCase.noise) {
    if (item.kind === 'correlation-id') headers.push(['X-Correlation-Id', headerSafe(item.value)]);
    if (item.kind === 'idempotency-key') headers.push(['Idempotency-Key', headerSafe(item.value)]);
  }
  const head = `${operation.method} ${path} HTTP/1.1\r\n${headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), payload ?? Buffer.alloc(0)]);
}

/** Header values travel as latin1; CR and LF would end the header (that is a different test). */
const headerSafe = (value: string) => Buffer.from(value.replace(/[\r\n]/g, ' ')).toString('latin1');

function baseToken(roles: string[]): string | undefined {
  const role = roles[0];
  if (!role) return undefined;
  return role === 'user' || role === 'superuser'
    ? token(role, { firm: FIRM, sub: USER })
    : token(role, { sub: USER });
}

function badToken(variant: TokenVariant, roles: string[]): string | undefined {
  const role = roles[0] ?? 'operator';
  const claims = { role, sub: USER, firm: FIRM };
  const now = Math.floor(Date.now() / 1000);
  switch (variant) {
    case 'none':
      return undefined;
    case 'garbage':
      return 'a.b.c';
    case 'expired':
      return token(role, { firm: FIRM, sub: USER, expiresIn: -3600 });
    case 'wrong-secret':
      return token(role, {
        firm: FIRM,
        sub: USER,
        secret: 'another-secret-another-secret-0123456789',
      });
    case 'alg-none':
      return jwt.sign(claims, '', { algorithm: 'none', expiresIn: 300 });
    case 'iat-string':
      return handSigned({ ...claims, exp: now + 300, iat: String(now) });
    case 'iat-future':
      return handSigned({ ...claims, exp: now + 7200, iat: now + 3600 });
    case 'no-exp':
      return handSigned({ ...claims, iat: now });
    case 'wrong-role':
      return token(
        ROLES.find((candidate) => !roles.includes(candidate))!,
        { firm: FIRM, sub: USER },
      );
    case 'other-firm':
      return token(role === 'user' || role === 'superuser' ? role : 'superuser', {
        firm: 'zeta',
        sub: USER,
      });
  }
}

function handSigned(claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const unsigned = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  return `${unsigned}.${createHmac('sha256', TEST_JWT_SECRET).update(unsigned).digest('base64url')}`;
}

/** What one run did, for the test's report line and docs/security.md. */
export interface FuzzReport {
  seed: number;
  requests: number;
  operations: number;
  byStatus: Record<string, number>;
  byMutation: Record<string, number>;
  durationMs: number;
}

const STACK = /\n\s+at |\(\/[^)]*:\d+:\d+\)|\b[\w-]+\.(ts|js):\d+|Error:/;

/**
 * Starts a service with the fixtures (an active firm, an enrolled user, a
 * corporation), fuzzes it for up to `maxRuns` cases or `budgetMs`, and checks
 * every answer and, at the end, the log head and the error log. Throws (with
 * the seed and the smallest failing request) on the first violation.
 */
export async function fuzz(options: {
  seed: number;
  maxRuns: number;
  budgetMs: number;
}): Promise<FuzzReport> {
  const logger = new CapturingLogger();
  const service = await startService({
    logger,
    // The limits have their own tests; here they would answer 429 before validation is reached.
    env: {
      RATE_LIMIT_PER_USER: 'off',
      RATE_LIMIT_PER_ADDRESS: 'off',
      RATE_LIMIT_FAILURES_PER_CALLER: 'off',
      RATE_LIMIT_FAILURES_PER_FIRM: 'off',
    },
  });
  const report: FuzzReport = {
    seed: options.seed,
    requests: 0,
    operations: 0,
    byStatus: {},
    byMutation: {},
    durationMs: 0,
  };
  const started = Date.now();
  try {
    await activeFirm(service.api, FIRM, 10);
    await registerUser(service.api, FIRM, USER);
    await enrollTotp(service.api, FIRM, USER);
    const corporation = await service.api.put(
      `/v1/firms/${FIRM}/corporations/corp-1`,
      token('host'),
      { name: 'Corp One' },
    );
    if (corporation.status !== 200) throw new Error(`fixture: ${corporation.text}`);
    await mailSettled(service);
    const headBefore = (await service.events()).length;

    const description = (await service.api.get('/openapi.json', token('operator')))
      .body as OpenApiDocument;
    const operations = operationsOf(description);
    report.operations = operations.length;
    const port = portOf(service);

    // fast-check 4 keeps the property's own error as the cause of the one it throws.
    await assertWithCause(
      fc.asyncProperty(fuzzCases(operations), async (fuzzCase) => {
        report.requests++;
        for (const mutation of fuzzCase.mutations) {
          report.byMutation[mutation.kind] = (report.byMutation[mutation.kind] ?? 0) + 1;
        }
        const outcome = await exchange(port, requestFor(fuzzCase), 15_000);
        const answer = parseResponse(outcome.data);
        report.byStatus[answer.status] = (report.byStatus[answer.status] ?? 0) + 1;
        const where = `${fuzzCase.operation.method} ${fuzzCase.operation.template} ${JSON.stringify(fuzzCase.mutations).slice(0, 300)}`;
        if (answer.status < 400 || answer.status >= 500) {
          throw new Error(`${where}: answered ${answer.status} ${answer.body.slice(0, 300)}`);
        }
        if (!/^application\/problem\+json/.test(answer.headers['content-type'] ?? '')) {
          throw new Error(
            `${where}: ${answer.status} is not problem+json: ${answer.headers['content-type']}`,
          );
        }
        const problem = JSON.parse(answer.body) as Record<string, unknown>;
        for (const member of ['type', 'title', 'detail']) {
          if (typeof problem[member] !== 'string')
            throw new Error(`${where}: no ${member} in ${answer.body}`);
        }
        if (problem.status !== answer.status)
          throw new Error(`${where}: status ${String(problem.status)} in the body`);
        if (STACK.test(answer.body)) throw new Error(`${where}: a stack trace in ${answer.body}`);
      }),
      {
        seed: options.seed,
        numRuns: options.maxRuns,
        interruptAfterTimeLimit: options.budgetMs,
        markInterruptAsFailure: false,
        // A failure is shrunk towards the smallest request that still fails, within bounds.
        endOnFailure: false,
      },
    );

    await mailSettled(service);
    const appended = (await service.events()).slice(headBefore);
    if (appended.length > 0) {
      throw new Error(
        `bad input appended: ${appended.map((event) => `${event.streamId} ${event.type}`).join(', ')}`,
      );
    }
    const errors = logger.lines.filter((line) => line.level === 'error' || line.level === 'fatal');
    if (errors.length > 0) {
      throw new Error(
        `logged at error level: ${errors
          .map((line) => line.message)
          .join(' | ')
          .slice(0, 1000)}`,
      );
    }
    const stacked = logger.lines.filter((line) => line.level === 'log' && STACK.test(line.message));
    if (stacked.length > 0) throw new Error(`a stack trace at info level: ${stacked[0].message}`);
  } finally {
    report.durationMs = Date.now() - started;
    await service.stop();
  }
  return report;
}

async function assertWithCause(...args: Parameters<typeof fc.assert>): Promise<void> {
  try {
    await fc.assert(...args);
  } catch (error) {
    const cause = (error as { cause?: unknown }).cause;
    if (cause instanceof Error) (error as Error).message += `\nGot: ${cause.message}`;
    throw error;
  }
}

/** The seed of a run: FUZZ_SEED when given (to replay one), else a new one. */
export function fuzzSeed(): number {
  const given = process.env.FUZZ_SEED;
  return given !== undefined && /^-?\d+$/.test(given) ? Number(given) : Date.now() % 2_147_483_647;
}
