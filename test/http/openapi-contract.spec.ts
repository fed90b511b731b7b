import Ajv, { type ValidateFunction } from 'ajv';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiResponse, RunningService, startService, token } from '../support/harness';
import {
  OpenApiDocument,
  OpenApiOperation,
  operationsOf,
  renderHttpApiDoc,
  Schema,
} from '../support/http-api-doc';
import { host, mfaPath, oathtool, operator, secretOf, superuserOf } from '../support/mfa';

/*
 * The served OpenAPI description is the contract a host application codes
 * against (API.md "Conventions": "document it in the OpenAPI description the
 * service serves"). The expected problem answers of each operation are stated
 * here from the contract's facts (who may call it, whether it takes a body,
 * whose ids its path holds, which limits and read models apply), not read
 * back from the code that writes them; and the running service's real
 * answers are checked against the schemas the description declares.
 */

const PROBLEM = 'application/problem+json';
const HTTP_API_DOC = join(__dirname, '..', '..', 'docs', 'http-api.md');
const FIRM = 'contract-firm';
const auditor = token('auditor', { sub: 'auditor-1' });

/** The verification endpoints, which ignore Idempotency-Key (API.md "Commands"). */
const VERIFICATIONS = /\/mfa\/(totp\/verify|webauthn\/authentication\/(options|verify))$/;
/** Reads answered from a stream, not a read model: `minPosition` never waits there. */
const STREAM_READS = [
  'get /v1/firms/{firmId}/mfa/subscription',
  'get /v1/firms/{firmId}/mfa/enablement',
  'get /v1/firms/{firmId}/users/{userId}/mfa/factors',
  'get /v1/firms/{firmId}/users/{userId}/mfa/login-requirement',
];
/** Where an unknown user is not a 404 (API.md): registering one, and the login requirement (`off`). */
const UNKNOWN_USER_ANSWERED = [
  'put /v1/firms/{firmId}/users/{userId}',
  'get /v1/firms/{firmId}/users/{userId}/mfa/login-requirement',
];

/** The problem statuses an operation can answer, from the contract's facts. */
function expectedProblems(method: string, path: string, operation: OpenApiOperation): string[] {
  const key = `${method} ${path}`;
  const command = method !== 'get' && path.startsWith('/v1/');
  const authenticated = path.startsWith('/v1/');
  const expected = new Set<string>(['429']);
  if ((operation.parameters ?? []).length > 0 || operation.requestBody) expected.add('400');
  if (authenticated || path === '/health') expected.add('401');
  if (authenticated) expected.add('403');
  if (
    (path.includes('{userId}') && !UNKNOWN_USER_ANSWERED.includes(key)) ||
    path.includes('{enrollmentId}') ||
    path.includes('{messageId}') ||
    // RemoveSpecificCorporation refuses a corporation not listed with 404 corporation-not-listed.
    key === 'delete /v1/firms/{firmId}/mfa/enablement/corporations/{corporationId}'
  ) {
    expected.add('404');
  }
  if (command) ['409', '413', '415'].forEach((status) => expected.add(status));
  if (command && !VERIFICATIONS.test(path)) expected.add('422');
  if (path.endsWith('/totp/verify')) expected.add('423');
  if (path.startsWith('/v1/firms/') || path === '/health') expected.add('503');
  return [...expected].sort();
}

/** `schema` with every `$ref` followed, or an error naming the ref that does not resolve. */
function unresolvedRefs(
  schema: unknown,
  document: OpenApiDocument,
  seen = new Set<string>(),
): string[] {
  if (Array.isArray(schema)) return schema.flatMap((item) => unresolvedRefs(item, document, seen));
  if (typeof schema !== 'object' || schema === null) return [];
  const ref = (schema as Schema).$ref as string | undefined;
  if (ref !== undefined) {
    const name = ref.replace('#/components/schemas/', '');
    if (!document.components.schemas[name]) return [ref];
    if (seen.has(name)) return [];
    seen.add(name);
    return unresolvedRefs(document.components.schemas[name], document, seen);
  }
  return Object.values(schema).flatMap((value) => unresolvedRefs(value, document, seen));
}

/** Every property schema of the description's schemas, with where it is. */
function propertiesOf(schema: Schema, where: string): Array<[string, string, Schema]> {
  const own = Object.entries((schema.properties ?? {}) as Record<string, Schema>).flatMap(
    ([name, property]) => [
      [`${where}.${name}`, name, property] as [string, string, Schema],
      ...propertiesOf(property, `${where}.${name}`),
    ],
  );
  const nested = [
    ...(schema.items ? propertiesOf(schema.items, `${where}[]`) : []),
    ...((schema.oneOf ?? []) as Schema[]).flatMap((variant, i) =>
      propertiesOf(variant, `${where}|${i}`),
    ),
  ];
  return [...own, ...nested];
}

describe('The OpenAPI description is the contract a host application codes against', () => {
  let service: RunningService;
  let document: OpenApiDocument;
  let operations: Array<[string, string, OpenApiOperation]>;

  beforeAll(async () => {
    service = await startService();
    document = (await service.api.get('/openapi.json')).body as OpenApiDocument;
    operations = operationsOf(document);
  });
  afterAll(() => service?.stop());

  it('describes every route of the contract', () => {
    // A route missing from the description would pass every check below unnoticed.
    expect(operations.length).toBeGreaterThanOrEqual(36);
  });

  it('gives every operation its 2xx answer with a schema whose references resolve', () => {
    const missing: string[] = [];
    for (const [method, path, operation] of operations) {
      const ok = Object.entries(operation.responses).filter(([status]) => /^2\d\d$/.test(status));
      const media = ok.flatMap(([, response]) => Object.values(response.content ?? {}));
      if (ok.length !== 1 || media.length === 0 || media.some((m) => !m.schema)) {
        missing.push(`${method} ${path}: no 2xx answer with a schema`);
        continue;
      }
      for (const ref of unresolvedRefs(media, document)) missing.push(`${method} ${path}: ${ref}`);
    }
    expect(missing).toEqual([]);
  });

  it('lists the problem answers each operation can give, each as problem+json', () => {
    const wrong: string[] = [];
    for (const [method, path, operation] of operations) {
      const listed = Object.keys(operation.responses)
        .filter((status) => Number(status) >= 400)
        .sort();
      const expected = expectedProblems(method, path, operation);
      const absent = expected.filter((status) => !listed.includes(status));
      if (absent.length > 0) wrong.push(`${method} ${path}: no ${absent.join(', ')}`);
      for (const status of listed) {
        const response = operation.responses[status];
        const schema = response.content?.[PROBLEM]?.schema;
        if (schema?.$ref !== '#/components/schemas/Problem' || !response.description) {
          wrong.push(`${method} ${path}: ${status} is not a described problem+json Problem`);
        }
      }
    }
    expect(wrong).toEqual([]);
    const problem = document.components.schemas.Problem;
    expect(problem.required).toEqual(expect.arrayContaining(['type', 'title', 'status', 'detail']));
    expect(Object.keys(problem.properties)).toEqual(
      expect.arrayContaining([
        'type',
        'title',
        'status',
        'detail',
        'instance',
        'errors',
        'limit',
        'retryAfterSeconds',
        'attemptsLeft',
      ]),
    );
  });

  it('describes every tag its operations use', () => {
    const used = new Set(operations.flatMap(([, , operation]) => operation.tags ?? []));
    const described = new Map((document.tags ?? []).map((tag) => [tag.name, tag.description]));
    for (const tag of used)
      expect([tag, described.get(tag)?.length ?? 0]).toEqual([tag, expect.any(Number)]);
    expect([...used].filter((tag) => !described.get(tag))).toEqual([]);
  });

  it("names every problem type of the service's error table in its introduction", () => {
    // docs/architecture.md "Errors" lists every code the service raises, with where.
    const table = readFileSync(join(__dirname, '..', '..', 'docs', 'architecture.md'), 'utf8');
    const codes = [...table.matchAll(/^\| (\d{3}) +\| `([a-z-]+)` +\|/gm)].map(
      ([, status, code]) => `${status} ${code}`,
    );
    expect(codes.length).toBeGreaterThan(50);
    const introduction = document.info.description ?? '';
    const rows = introduction.split('\n').filter((line) => /^\| \d{3} \|/.test(line));
    const missing = codes.filter(
      (entry) =>
        !rows.some(
          (row) =>
            row.startsWith(`| ${entry.slice(0, 3)} |`) && row.includes(`\`${entry.slice(4)}\``),
        ),
    );
    expect(missing).toEqual([]);
  });

  it('summarises every operation', () => {
    const bare = operations
      .filter(([, , operation]) => !operation.summary?.trim())
      .map(([method, path]) => `${method} ${path}`);
    expect(bare).toEqual([]);
  });

  it('types ids and free text as strings, never as objects, and counts as integers', () => {
    const COUNTS = /^(licenseCount|seatsInUse|unutilized|usagePercent|attemptsLeft|eventsChecked)$/;
    const wrong: string[] = [];
    const schemas: Array<[string, Schema]> = [
      ...Object.entries(document.components.schemas),
      ...operations.flatMap(([method, path, operation]) =>
        (operation.parameters ?? []).map(
          (parameter) =>
            [
              `${method} ${path} ?${parameter.name}`,
              { properties: { [parameter.name]: parameter.schema ?? {} } },
            ] as [string, Schema],
        ),
      ),
    ];
    for (const [name, schema] of schemas) {
      for (const [where, field, property] of propertiesOf(schema, name)) {
        const stringField =
          /Id$|^(organization|name|email|label|plan|reason|code|search|cursor|minPosition|position)$/;
        if (stringField.test(field) && property.type !== 'string' && !property.$ref) {
          wrong.push(`${where}: ${JSON.stringify(property.type)}`);
        }
        if (COUNTS.test(field) && property.type !== 'integer' && !property.$ref) {
          wrong.push(`${where}: ${JSON.stringify(property.type)}, not integer`);
        }
      }
    }
    expect(wrong).toEqual([]);
    expect(document.components.schemas.UserBody.properties.corporationId.type).toBe('string');
    expect(document.components.schemas.UserBody.properties.organization.type).toBe('string');
  });

  it('says what minPosition does: waits on read models, never on reads from a stream', () => {
    const said: Record<string, string> = {};
    for (const [method, path, operation] of operations) {
      const parameter = operation.parameters?.find((p) => p.name === 'minPosition');
      if (parameter) said[`${method} ${path}`] = parameter.description ?? '';
    }
    for (const read of STREAM_READS) {
      expect([read, said[read]]).toEqual([read, expect.stringContaining('never waited on')]);
      expect(said[read]).not.toMatch(/read model/);
    }
    const fromReadModels = Object.keys(said).filter((read) => !STREAM_READS.includes(read));
    expect(fromReadModels.length).toBeGreaterThanOrEqual(6);
    for (const read of fromReadModels) {
      expect([read, said[read]]).toEqual([
        read,
        expect.stringContaining('503 `read-model-behind`'),
      ]);
    }
  });

  it('gives an example for every JSON answer and every request body field', () => {
    const missing: string[] = [];
    const exampleOf = (schema: Schema | undefined): unknown =>
      schema?.$ref
        ? exampleOf(document.components.schemas[schema.$ref.replace('#/components/schemas/', '')])
        : (schema?.example ?? (schema?.type === 'array' ? exampleOf(schema.items) : undefined));
    for (const [method, path, operation] of operations) {
      for (const [status, response] of Object.entries(operation.responses)) {
        if (!status.startsWith('2')) continue;
        for (const [type, media] of Object.entries(response.content ?? {})) {
          if (exampleOf(media.schema) === undefined)
            missing.push(`${method} ${path} ${status} ${type}`);
        }
      }
      const body = operation.requestBody?.content['application/json']?.schema;
      const bodySchema = body?.$ref
        ? document.components.schemas[body.$ref.replace('#/components/schemas/', '')]
        : body;
      for (const [field, property] of Object.entries(
        (bodySchema?.properties ?? {}) as Record<string, Schema>,
      )) {
        if (property.example === undefined && exampleOf(property) === undefined) {
          missing.push(`${method} ${path} body.${field}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  describe('answers as it says', () => {
    const ajv = new Ajv({ strict: false, allErrors: true });
    ajv.addFormat(
      'date-time',
      (text: string) =>
        /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(text) &&
        !Number.isNaN(Date.parse(text)),
    );
    const ROOT = 'https://mfa-service.example/openapi.json';
    const compiled = new Map<string, ValidateFunction>();
    let checked = 0;

    /** The description's operation for a request, matching its path against the templates. */
    function operationFor(method: string, url: string): [string, OpenApiOperation] {
      const path = url.split('?')[0];
      const found = operations.find(
        ([m, template]) =>
          m === method.toLowerCase() &&
          new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(path),
      );
      if (!found) throw new Error(`${method} ${path} is not in the description`);
      return [found[1], found[2]];
    }

    /** Checks an answer: its status is declared, and its body matches the declared schema. */
    function conforms(method: string, url: string, answer: ApiResponse): string[] {
      const [template, operation] = operationFor(method, url);
      const where = `${method} ${template} → ${answer.status}`;
      const declared = operation.responses[String(answer.status)];
      if (!declared) return [`${where}: status not declared`];
      const type = (answer.headers.get('content-type') ?? '').split(';')[0];
      const schema = declared.content?.[type]?.schema;
      if (!schema) return [`${where}: ${type} not declared`];
      const id = `${template} ${answer.status} ${type}`;
      if (!compiled.has(id)) {
        if (!ajv.getSchema(ROOT)) ajv.addSchema({ $id: ROOT, components: document.components });
        const absolute = JSON.parse(
          JSON.stringify(schema).replaceAll('"#/components/', `"${ROOT}#/components/`),
        );
        compiled.set(id, ajv.compile(absolute));
      }
      const validate = compiled.get(id)!;
      const bodies =
        type === 'application/x-ndjson'
          ? answer.text
              .trim()
              .split('\n')
              .map((line) => JSON.parse(line) as unknown)
          : [answer.body];
      checked += bodies.length;
      return bodies.flatMap((body) =>
        validate(body)
          ? []
          : [
              `${where}: ${ajv.errorsText(validate.errors)} in ${JSON.stringify(body).slice(0, 300)}`,
            ],
      );
    }

    it("in a whole session, every answer's status is declared and its body matches its schema", async () => {
      const api = service.api;
      const admin = superuserOf(FIRM);
      const m = `/v1/firms/${FIRM}/mfa`;
      const user = mfaPath(FIRM, 'u-1');
      const failures: string[] = [];
      const send = async (method: string, url: string, caller?: string, body?: unknown) => {
        const answer = await api.request(method, url, {
          token: caller,
          body: method === 'GET' ? undefined : (body ?? {}),
        });
        failures.push(...conforms(method, url, answer));
        return answer;
      };
      await send('GET', `${m}/subscription`, admin);
      await send('POST', `${m}/subscription/request`, admin, { plan: 'standard' });
      await send('POST', `${m}/subscription/activate`, operator, {
        licenseCount: 5,
        plan: 'standard',
      });
      await send('PUT', `${m}/licenses`, operator, { licenseCount: 6 });
      await send('PUT', `${m}/licenses`, operator, { licenseCount: 0 }); // 400 validation-failed
      await send('PUT', `${m}/enablement/case-managers`, admin, { enabled: true });
      await send('PUT', `${m}/enablement/vendor-case-managers`, admin, { enabled: false });
      await send('PUT', `${m}/enablement/corporations`, admin, { mode: 'specific' });
      await send('PUT', `${m}/enablement/corporations/corp-1`, admin, {
        corpUsers: true,
        foreignNationals: false,
      });
      await send('GET', `${m}/enablement`, admin);
      await send('PUT', `/v1/firms/${FIRM}/users/u-1`, host, {
        role: 'case-manager',
        name: 'Ada Lovelace',
        email: 'ada@firm.example',
        organization: 'Analytical',
      });
      await send('PUT', `/v1/firms/${FIRM}/users/u-2`, host, {
        role: 'corp-user',
        corporationId: 'corp-1',
        name: 'Bob',
        email: 'bob@firm.example',
      });
      await send('PUT', `/v1/firms/${FIRM}/corporations/corp-1`, host, { name: 'Corp One' });
      await send('POST', `/v1/firms/${FIRM}/users/u-2/deactivate`, host, {
        reason: 'account-disabled',
      });
      await send('POST', `/v1/firms/${FIRM}/users/u-2/reactivate`, host, {});
      await send('POST', `/v1/firms/${FIRM}/users/nobody/reactivate`, host, {}); // 404
      await send('DELETE', `${m}/enablement/corporations/corp-1`, admin);
      await send('DELETE', `${m}/enablement/corporations/corp-9`, admin); // 404 corporation-not-listed
      await send('GET', `${user}/login-requirement`, host);
      const started = await send('POST', `${user}/totp/enrollment`, host, { label: 'Phone' });
      const secret = secretOf(started.body.otpauthUri);
      await send('POST', `${user}/totp/enrollment/${started.body.enrollmentId}/confirm`, host, {
        code: '12345',
      }); // 400
      const confirmed = await send(
        'POST',
        `${user}/totp/enrollment/${started.body.enrollmentId}/confirm`,
        host,
        { code: oathtool(secret, new Date()) },
      );
      await send('GET', `${user}/factors`, host);
      await send('GET', `${user}/login-requirement?minPosition=${confirmed.body.position}`, host);
      await send('POST', `${user}/totp/verify`, host, { code: '000000' }); // 401 invalid-code
      await send('POST', `${user}/totp/verify`, host, { code: oathtool(secret, new Date(), 1) });
      const seen = new Set<number>();
      for (let attempt = 0; attempt < 7; attempt++) {
        seen.add((await send('POST', `${user}/totp/verify`, host, { code: '000000' })).status);
      }
      await send('POST', `${user}/webauthn/registration/options`, host, { label: 'Key' });
      await send('POST', `${user}/webauthn/authentication/options`, host, {}); // 409 factor-not-enrolled
      const at = `?minPosition=${confirmed.body.position}`;
      await send('GET', `${m}/usage${at}`, admin);
      await send('GET', `${m}/usage/history${at}`, admin);
      await send('GET', `${m}/counters${at}`, admin);
      await send('GET', `${m}/enrolled-users${at}`, admin);
      await send('GET', `/v1/firms/${FIRM}/corporations${at}`, admin);
      await send('GET', `${m}/notifications/failed${at}`, operator);
      await send('POST', `${m}/notifications/nope/retry`, operator, {}); // 404
      await send('GET', `/health`);
      await send('GET', `/health`, operator);
      await send('GET', `/v1/audit/firms/${FIRM}/events`, auditor);
      await send('GET', `/v1/audit/firms/${FIRM}/verify`, auditor);
      await send('GET', `/v1/audit/firms/${FIRM}/state?asOf=${new Date().toISOString()}`, auditor);
      await send('POST', `${user}/reset`, admin, { reason: 'Lost phone' });
      await send('POST', `${m}/subscription/cancel`, operator, {});
      await send('PUT', `${m}/enablement/case-managers`, admin, { enabled: true }); // 409
      // The refusals a session rarely meets: a rate limit, a read model behind (and the lock above).
      for (let attempt = 0; attempt < 31; attempt++) {
        const options = `${mfaPath(FIRM, 'u-2')}/webauthn/authentication/options`;
        seen.add((await send('POST', options, host, {})).status);
      }
      seen.add((await send('GET', `${m}/usage?minPosition=99999999`, admin)).status);
      expect([...seen].filter((status) => [423, 429, 503].includes(status)).sort()).toEqual([
        423, 429, 503,
      ]);
      expect(failures).toEqual([]);
      expect(checked).toBeGreaterThan(40);
    });

    /** A token of one of `roles` (a superuser's names another firm: refused, but declared). */
    const callerOf = (roles: string[]) =>
      roles.includes('host')
        ? host
        : roles.includes('operator')
          ? operator
          : roles.includes('auditor')
            ? auditor
            : superuserOf('x-1');

    it('every operation refused without a token, with a wrong role, a bad id or a text body answers a status it declares', async () => {
      const failures: string[] = [];
      const wrongRole = token('auditor', { sub: 'auditor-2' });
      for (const [method, template, operation] of operations) {
        if (!template.startsWith('/v1/')) continue;
        const url = template.replace(/\{[^}]+\}/g, 'x-1');
        const body = method === 'get' ? undefined : {};
        const asked: Array<
          [
            string,
            { token?: string; body?: unknown; rawBody?: string; headers?: Record<string, string> },
          ]
        > = [
          ['no token', { body }],
          ['wrong role', { token: template.startsWith('/v1/audit/') ? host : wrongRole, body }],
          ['bad id', { token: callerOf(operation['x-roles'] ?? []), body }],
        ];
        if (method !== 'get') {
          asked.push([
            'text body',
            { token: host, rawBody: 'hello', headers: { 'content-type': 'text/plain' } },
          ]);
        }
        for (const [what, options] of asked) {
          const target =
            what === 'bad id'
              ? template.replace('{firmId}', 'bad%2Aid').replace(/\{[^}]+\}/g, 'x-1')
              : url;
          const answer = await service.api.request(method.toUpperCase(), target, options);
          if (answer.status < 400) failures.push(`${method} ${template} ${what}: ${answer.status}`);
          else
            failures.push(
              ...conforms(method.toUpperCase(), target, answer).map((f) => `${what}: ${f}`),
            );
        }
      }
      expect(failures).toEqual([]);
    });
  });

  it('docs/http-api.md is what the description renders', () => {
    const rendered = renderHttpApiDoc(document);
    if (process.env.UPDATE_HTTP_API_DOC === '1') writeFileSync(HTTP_API_DOC, rendered);
    let committed = '';
    try {
      committed = readFileSync(HTTP_API_DOC, 'utf8');
    } catch {
      // No file yet: the comparison below fails with the whole rendering.
    }
    // Compared line by line so that a failure shows the lines that drifted.
    expect(committed.split('\n')).toEqual(rendered.split('\n'));
  });
});
