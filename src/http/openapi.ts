import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import type { FastifyInstance } from 'fastify';
import { dirname, join } from 'node:path';
import { ID_PATTERN } from '../shared/ids';
import { registeredApiSchemas } from './api-schemas';
import { PROBLEM_CONTENT_TYPE } from './problem';
import { CSS, fileOnDisk, HTML, JAVASCRIPT, servePageFiles } from './page-files';

type Operation = {
  description?: string;
  parameters?: Array<Record<string, unknown>>;
  requestBody?: unknown;
  responses: Record<string, unknown>;
  'x-roles'?: string[];
  'x-idempotency-key'?: 'ignored';
  'x-rate-limit'?: 'user' | 'verification';
  /** The read models a GET answers from (ReadsProjections): `minPosition` may answer 503. */
  'x-read-models'?: string[];
  /** 404 answers beyond the unknown ids of the path (`code`: when). */
  'x-not-found'?: string[];
  /** What an unknown `{userId}` gets instead of 404 `user-not-found`. */
  'x-unknown-user'?: 'registers' | 'off';
};

const problemRef = { $ref: '#/components/schemas/Problem' };
const problemResponse = (description: string, example?: Record<string, unknown>) => ({
  description,
  content: {
    [PROBLEM_CONTENT_TYPE]: { schema: problemRef, ...(example ? { example } : {}) },
  },
});

/** Examples of the path ids, for the UI's "Try it out" and docs/http-api.md. */
const PATH_EXAMPLES: Record<string, string> = {
  firmId: 'firm-1',
  userId: 'u-1',
  corporationId: 'corp-1',
  enrollmentId: '25347e1e-3816-505d-a99e-75430442b85d',
  messageId: 'b8e3c7d0-5c1a-5e0e-9d51-2f1f0c8e7a11',
};

/** What each tag groups, for the description's `tags` list (the UI's section headings). */
export const TAGS: Record<string, string> = {
  'Subscription and licenses':
    "A firm's MFA subscription: requested by its admin, activated, resized and cancelled by an " +
    'operator. The license count is the number of seats: one per user holding a factor.',
  Enablement:
    'Who must use MFA in a firm: case managers, vendor case managers, and corp users and ' +
    'foreign nationals of every corporation or of listed ones. Needs an active subscription.',
  Directory:
    "The host application's users and corporations, as the service needs them: role, " +
    'corporation, name, email, and whether the user is active.',
  Enrollment:
    'Registering factors: a TOTP authenticator app (QR code, then a code) or a WebAuthn ' +
    'security key; the first confirmed factor takes a seat. Listing and resetting them.',
  Login:
    'What a user must do at login (verify, enroll, bypass, off) and verifying a TOTP code or a ' +
    'security key. The host application calls these at every login.',
  Dashboards:
    "Read models for the firm admin's pages: license usage and its history, enabled and " +
    'enrolled users per role, the enrolled users, the corporations picker.',
  'Notifications (operators)':
    'Emails the mail server refused for good, and queuing one again once the address is fixed.',
  Audit:
    "For auditors: a firm's whole history as verifiable NDJSON, an integrity check of its hash " +
    'chains, and its dashboards as they stood at any moment.',
  Operations: 'Liveness, readiness and projection lag, with details for operators.',
};

/**
 * The conventions every route shares, as the description's introduction (and
 * so the first part of docs/http-api.md, which is generated from it).
 */
const SERVICE_DESCRIPTION = `Decides who must use multi-factor authentication, enrolls factors, verifies logins, counts licenses and keeps an auditable history. JSON in and out, camelCase fields; ids are opaque strings of 1–128 characters of \`A-Z a-z 0-9 . _ : -\`.

## Authentication and roles

Every route under \`/v1\` needs \`Authorization: Bearer <JWT>\`: HS256 signed with \`MFA_JWT_SECRET\` (or RS256 checked with \`MFA_JWT_PUBLIC_KEY\`), with the claims \`sub\` (the actor), \`role\`, \`exp\` and \`firm\`. The roles:

| role | who | firm claim |
|---|---|---|
| \`host\` | the host application, on behalf of its users | optional |
| \`user\` | an end user, acting on their own \`userId\` (= \`sub\`) only | required |
| \`superuser\` | a firm admin | required |
| \`operator\` | the service's operators | optional |
| \`auditor\` | an auditor, read-only | optional |

A token with a \`firm\` claim reaches that firm only. A missing, expired or invalid token is a 401; a valid token with the wrong role, another firm or another user is a 403. Each operation lists its roles.

## Commands: position, Idempotency-Key, X-Correlation-Id

A command (any \`POST\`, \`PUT\` or \`DELETE\`) answers 200 (a TOTP enrollment 201) with \`position\`, the global log position of its effect, as a decimal string, plus what the command returns. A refused command appends nothing.

- \`Idempotency-Key\` (optional, up to 255 characters): a retry with the same key and the same request answers the first answer (kept 24 h) without doing anything again; the same key with another request is a 422 \`idempotency-key-reused\`, and while the first is still running a 409 \`idempotency-request-in-progress\`. Keys are scoped by caller and by the firm in the path. The verification endpoints (\`totp/verify\`, \`webauthn/authentication/*\`) ignore it: a retried verification is a new attempt, and a code already accepted is refused as a replay.
- \`X-Correlation-Id\` (optional, an id; anything else is replaced): carried by every event the request causes, and echoed in the answer's \`X-Correlation-Id\` header (one is made up when none is sent).

## Reads: minPosition

Reads answered from read models (the dashboards, the failed emails) accept \`?minPosition=<position>\`: the answer waits, up to 5 s, until those read models have applied that position, else 503 \`read-model-behind\` with \`Retry-After\`. Pass the \`position\` a command answered to read your own writes. Reads answered from the event log itself (the subscription, the enablement, a user's factors, the login requirement) accept it too and never wait: they already include every answered position.

## Errors

Every error is an RFC 9457 \`application/problem+json\` answer (schema \`Problem\`) with a stable \`type\` of the form \`/problems/<code>\` to branch on, the HTTP \`title\`, the \`status\` and a \`detail\` in words; a 400 \`validation-failed\` lists the fields in \`errors\`. Bad input is never a 500. The types:

| status | type | when |
|---|---|---|
| 400 | \`validation-failed\` | a path id, query or body field is invalid (\`errors\` lists them) |
| 400 | \`malformed-json\`, \`json-too-deep\`, \`bad-request\` | the body or the request cannot be read |
| 400 | \`invalid-idempotency-key\` | the Idempotency-Key is not 1–255 visible ASCII characters |
| 400 | \`corporation-required\`, \`corporation-not-allowed\` | a user's \`corporationId\` missing for corp-user and foreign-national, or sent for another role |
| 400 | \`invalid-code\` | confirming a TOTP enrollment with a code that matches no step |
| 400 | \`registration-not-verified\` | the browser's security-key registration was refused |
| 401 | \`unauthorized\` | no valid bearer token (on \`/health\`: a token sent and not valid) |
| 401 | \`invalid-code\`, \`code-already-used\`, \`webauthn-not-verified\` | a login verification failed (\`verified: false\`; \`attemptsLeft\` for TOTP) |
| 403 | \`forbidden\` | wrong role, another firm, or a \`user\` acting on another user |
| 404 | \`user-not-found\` | the user is not registered in this firm (a firm needs no creation: a firm never seen has subscription status \`none\`) |
| 404 | \`enrollment-not-found\`, \`corporation-not-listed\`, \`email-not-found\`, \`not-found\` | no such pending enrollment, listed corporation, email, or route |
| 405 | \`method-not-allowed\` | a method the route does not serve |
| 408 | \`request-timeout\` | the request did not arrive in time |
| 409 | \`subscription-not-requested\`, \`subscription-already-active\`, \`subscription-not-active\`, \`license-below-usage\`, \`license-exhausted\` | a subscription or seat rule refused the command |
| 409 | \`corporation-mode-not-specific\` | listing a corporation while corporations are enabled in mode \`all\` |
| 409 | \`mfa-not-enabled\`, \`user-inactive\`, \`totp-factor-limit\`, \`enrollment-expired\`, \`enrollment-not-pending\`, \`enrollment-already-confirmed\` | an enrollment rule refused the command |
| 409 | \`challenge-not-pending\`, \`challenge-already-used\`, \`registration-not-verified\`, \`credential-already-registered\`, \`credential-registered-to-another-user\`, \`authenticator-not-allowed\` | a security-key registration rule refused the command |
| 409 | \`factor-not-enrolled\` | a login verification for a factor the user does not hold |
| 409 | \`email-not-failed\`, \`recipient-not-active\` | a failed email cannot be queued again |
| 409 | \`concurrency-conflict\`, \`idempotency-key-in-use\`, \`idempotency-request-in-progress\` | the resource kept changing; the Idempotency-Key belongs to another change; a request with the same key is still running (\`Retry-After\`) |
| 413 | \`body-too-large\` | the body exceeds 64 KiB |
| 415 | \`unsupported-media-type\` | a body that is not \`application/json\` |
| 422 | \`idempotency-key-reused\` | an Idempotency-Key sent again with another request |
| 423 | \`totp-locked\`, \`totp-blocked\` | TOTP verification is locked after failed codes in a row (\`lockedUntil\`, \`Retry-After\` for a timed lock) |
| 429 | \`too-many-requests\` | a rate limit (\`limit\` says which, \`Retry-After\` when to come back) |
| 431 | \`headers-too-large\` | the request line and headers exceed 16 KiB |
| 500 | \`internal-error\` | anything unexpected (never for bad input) |
| 503 | \`read-model-behind\` | \`minPosition\` not reached within 5 s (\`Retry-After\`) |
| 503 | \`stream-unreadable\` | a stream holds an event that cannot be read, until an operator repairs it |
| 503 | \`event-store-unavailable\` | \`GET /health\`: the event log does not answer (\`Retry-After\`) |

## Rate limits

Too many requests get a 429 \`too-many-requests\` with \`Retry-After\` (seconds) and the problem's \`limit\` and \`retryAfterSeconds\`. The limits (configurable, defaults in brackets): per target user on the verification and enrollment endpoints (\`user\`, 30 per 15 min); failed verifications per caller (\`caller-failures\`, 1000 per 15 min) and per firm (\`firm-failures\`, 300 per 15 min); and per client address only for requests without a valid token (\`address\`, 120 per minute), since the host application calls from a few addresses on behalf of all its users.`;

/**
 * Serves the OpenAPI description at /openapi.json (and /openapi.yaml) and its
 * UI at /docs (serveDocsPage). The conventions every operation shares (roles,
 * problem answers, Idempotency-Key, id formats) are written into each
 * operation here, once, rather than repeated on every route.
 */
export function setUpOpenApi(
  app: INestApplication,
  /** Operations of routes served outside Nest's controllers (ADR 0020), by path. */
  otherPaths: Record<string, Record<string, unknown>> = {},
): void {
  const builder = new DocumentBuilder()
    .setTitle('MFA Service')
    .setDescription(SERVICE_DESCRIPTION)
    .setVersion('1')
    .addBearerAuth({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
  for (const [name, description] of Object.entries(TAGS)) builder.addTag(name, description);
  const document = SwaggerModule.createDocument(app, builder.build());
  document.paths = withPathsBeforeTheirTag(document.paths, structuredClone(otherPaths));
  describeConventions(document);
  SwaggerModule.setup('docs', app, document, {
    jsonDocumentUrl: 'openapi.json',
    yamlDocumentUrl: 'openapi.yaml',
    // Nest's UI serves swagger-ui-dist's whole folder (package.json, 3 MB of source maps)
    // and a page with inline styles: serveDocsPage serves what the page needs, no more.
    ui: false,
  });
  serveDocsPage(app.getHttpAdapter().getInstance() as FastifyInstance);
}

/**
 * `paths` with `extra` inserted before the first path of the same tag (where
 * Nest would have listed them as the first methods of their controller), or at
 * the end.
 */
function withPathsBeforeTheirTag(
  paths: OpenAPIObject['paths'],
  extra: Record<string, Record<string, unknown>>,
): OpenAPIObject['paths'] {
  const tagsOf = (item: object) =>
    Object.values(item).flatMap((operation) => (operation as { tags?: string[] }).tags ?? []);
  const extraTags = new Set(Object.values(extra).flatMap(tagsOf));
  const entries = Object.entries(paths);
  let at = entries.findIndex(([, item]) => tagsOf(item).some((tag) => extraTags.has(tag)));
  if (at < 0) at = entries.length;
  return Object.fromEntries([
    ...entries.slice(0, at),
    ...(Object.entries(extra) as typeof entries),
    ...entries.slice(at),
  ]);
}

/** Swagger UI's files, from the swagger-ui-dist package. */
const swaggerUiDir = dirname(require.resolve('swagger-ui-dist/package.json'));

/*
 * The page loads one stylesheet and two scripts from this origin and nothing
 * inline, so its Content-Security-Policy needs neither 'unsafe-inline' nor
 * 'unsafe-eval' (PAGE_CSP). The script finds /openapi.json relative to its own
 * URL, so the page works at /docs and at /docs/ alike.
 */
const docsPage = (base: string) => `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>MFA Service API</title>
  <link rel="stylesheet" href="${base}swagger-ui.css">
  <link rel="stylesheet" href="${base}docs.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="${base}swagger-ui-bundle.js"></script>
  <script src="${base}docs.js"></script>
</body>
</html>
`;

const docsCss = `html { box-sizing: border-box; overflow-y: scroll; }
*, *::before, *::after { box-sizing: inherit; }
body { margin: 0; background: #fafafa; }
`;

const docsJs = `(function () {
  var script = document.currentScript;
  window.ui = SwaggerUIBundle({
    url: new URL('../openapi.json', script.src).href,
    dom_id: '#swagger-ui',
    deepLinking: true,
    validatorUrl: null,
  });
})();
`;

/**
 * /docs: the page, its stylesheets and its scripts, each a fixed route with
 * the page policy (servePageFiles).
 */
function serveDocsPage(fastify: FastifyInstance): void {
  const fromDist = (name: string, type: string) =>
    fileOnDisk(`/docs/${name}`, type, join(swaggerUiDir, name));
  servePageFiles(fastify, [
    { path: '/docs', type: HTML, read: () => docsPage('docs/') },
    { path: '/docs/', type: HTML, read: () => docsPage('') },
    fromDist('swagger-ui.css', CSS),
    fromDist('swagger-ui-bundle.js', JAVASCRIPT),
    { path: '/docs/docs.css', type: CSS, read: () => docsCss },
    { path: '/docs/docs.js', type: JAVASCRIPT, read: () => docsJs },
  ]);
}

function describeConventions(document: OpenAPIObject): void {
  document.components = document.components ?? {};
  document.components.schemas = {
    ...document.components.schemas,
    ...(registeredApiSchemas() as NonNullable<typeof document.components.schemas>),
    Problem: PROBLEM_SCHEMA,
  };
  for (const [path, item] of Object.entries(document.paths)) {
    for (const [method, value] of Object.entries(item)) {
      if (!['get', 'put', 'post', 'delete'].includes(method)) continue;
      const operation = value as Operation;
      for (const parameter of operation.parameters ?? []) {
        if (parameter.in === 'path') {
          parameter.schema = { type: 'string', pattern: ID_PATTERN.source, maxLength: 128 };
          parameter.description ??=
            `The ${String(parameter.name).replace(/Id$/, '')}'s id: 1–128 characters of ` +
            '`A-Z a-z 0-9 . _ : -`, not `.` or `..`.';
          parameter.example ??= PATH_EXAMPLES[String(parameter.name)];
        }
      }
      if (operation['x-roles']) {
        const roles = operation['x-roles'].map((role) => `\`${role}\``).join(', ');
        operation.description = `${operation.description ?? ''}\n\nRoles: ${roles}.`.trim();
      }
      const command = method !== 'get' && path.startsWith('/v1/');
      const keyed = command && operation['x-idempotency-key'] !== 'ignored';
      if (command) {
        if (!keyed) {
          operation.description =
            `${operation.description ?? ''}\n\nThis verification ignores \`Idempotency-Key\`: ` +
            'a retried verification is a new attempt, and a code or challenge already accepted ' +
            'is refused as a replay.';
        }
        operation.parameters = [
          ...(operation.parameters ?? []),
          ...(keyed
            ? [
                {
                  name: 'Idempotency-Key',
                  in: 'header',
                  required: false,
                  description:
                    'Makes a retry a no-op that answers the first answer (24 h); scoped by caller ' +
                    'and by the firm in the path.',
                  schema: { type: 'string', maxLength: 255 },
                  example: '3f0c9a52-7d1e-4b8a-9a57-0d6f1c2b4e11',
                },
              ]
            : []),
          {
            name: 'X-Correlation-Id',
            in: 'header',
            required: false,
            description: 'Carried by every event the command causes.',
            schema: { type: 'string', pattern: ID_PATTERN.source },
            example: 'login-7f3a',
          },
        ];
      }
      Object.assign(operation.responses, problemAnswers(path, method, operation, keyed), {
        // An answer declared on the route itself (e.g. 423 of totp/verify) is more precise.
        ...pickProblems(operation.responses),
      });
      operation.responses = sortedByStatus(operation.responses);
    }
  }
}

/** The responses already declared that are problems (4xx, 5xx). */
function pickProblems(responses: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(responses).filter(([status]) => Number(status) >= 400));
}

function sortedByStatus(responses: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(responses).sort(([a], [b]) => Number(a) - Number(b) || a.localeCompare(b)),
  );
}

/**
 * The problem answers an operation can give, from what the operation is:
 * who may call it, whether it takes a body, whose ids its path holds, which
 * limits and read models apply (API.md "Conventions", docs/http-api.md).
 */
function problemAnswers(
  path: string,
  method: string,
  operation: Operation,
  keyed: boolean,
): Record<string, unknown> {
  const answers: Record<string, unknown> = {};
  const command = method !== 'get' && path.startsWith('/v1/');
  const verification = operation['x-rate-limit'] === 'verification';
  const hasInput = (operation.parameters ?? []).length > 0 || operation.requestBody !== undefined;
  if (hasInput) {
    answers['400'] = problemResponse(
      'Invalid input: `validation-failed` lists the fields in `errors`.',
      {
        type: '/problems/validation-failed',
        title: 'Bad Request',
        status: 400,
        detail: 'The request is not valid; see errors.',
        errors: [{ field: 'firmId', message: 'must be 1-128 characters of A-Z a-z 0-9 . _ : -' }],
      },
    );
  }
  if (operation['x-roles'] || path === '/health') {
    answers['401'] = problemResponse(
      verification
        ? 'No valid bearer token (`unauthorized`), or the verification failed: `invalid-code`, ' +
            '`code-already-used` or `webauthn-not-verified`, with `verified: false` (and ' +
            '`attemptsLeft` for TOTP).'
        : operation['x-roles']
          ? 'No valid bearer token (`unauthorized`).'
          : 'A bearer token was sent and is not valid (`unauthorized`); send none, or a valid one.',
      verification
        ? {
            type: '/problems/invalid-code',
            title: 'Unauthorized',
            status: 401,
            detail: 'The code is not valid.',
            verified: false,
            attemptsLeft: 4,
            position: '15',
          }
        : undefined,
    );
  }
  if (operation['x-roles']) {
    answers['403'] = problemResponse(
      '`forbidden`: the role is not among those listed, or the token names another firm, or a ' +
        '`user` acts on another user.',
    );
  }
  const notFound = [
    ...(path.includes('{userId}') && operation['x-unknown-user'] === undefined
      ? ['`user-not-found`: the user is not registered in this firm']
      : []),
    ...(path.includes('{enrollmentId}')
      ? ['`enrollment-not-found`: no such pending enrollment for this user']
      : []),
    ...(path.includes('{messageId}') ? ['`email-not-found`: no such email in this firm'] : []),
    ...(operation['x-not-found'] ?? []),
  ];
  if (notFound.length > 0) answers['404'] = problemResponse(`${notFound.join('; ')}.`);
  if (command) {
    answers['409'] = problemResponse(
      'A rule refused the command (see `type` and the description above); nothing was appended. ' +
        (keyed
          ? 'Also `idempotency-request-in-progress` while a request with the same ' +
            'Idempotency-Key runs, and `concurrency-conflict` when the resource kept changing.'
          : '`concurrency-conflict` when the resource kept changing.'),
      {
        type: '/problems/subscription-not-active',
        title: 'Conflict',
        status: 409,
        detail: 'The firm has no active MFA subscription.',
      },
    );
    answers['413'] = problemResponse('`body-too-large`: the body exceeds the size limit.');
    answers['415'] = problemResponse(
      '`unsupported-media-type`: a body sent as anything but `application/json`.',
    );
  }
  if (keyed) {
    answers['422'] = problemResponse(
      '`idempotency-key-reused`: this Idempotency-Key was used for another request.',
    );
  }
  answers['429'] = problemResponse(
    operation['x-rate-limit'] === 'verification'
      ? 'Too many requests for this user, or too many failed verifications by this caller or in ' +
          'this firm (`limit` says which); `Retry-After` gives the seconds to wait.'
      : operation['x-rate-limit'] === 'user'
        ? 'Too many verification and enrollment requests for this user (`limit: user`); ' +
          '`Retry-After` gives the seconds to wait.'
        : 'Too many requests without a valid token from this address (`limit: address`); ' +
          '`Retry-After` gives the seconds to wait.',
    {
      type: '/problems/too-many-requests',
      title: 'Too Many Requests',
      status: 429,
      detail: 'Too many verification and enrollment requests for this user. Retry after 42 s.',
      limit: 'user',
      retryAfterSeconds: 42,
    },
  );
  const unavailable = [
    ...(operation['x-read-models']
      ? [
          '`read-model-behind`: with `minPosition`, the read model did not reach it within 5 s ' +
            '(retry after `Retry-After`)',
        ]
      : []),
    // Commands and the reads of a resource's own stream fold its events (CommandHandler.load).
    ...(path.startsWith('/v1/firms/') && !operation['x-read-models']
      ? [
          '`stream-unreadable`: a stream the answer needs holds an event that cannot be read, ' +
            'until an operator repairs it',
        ]
      : []),
    ...(path === '/health'
      ? ['`event-store-unavailable`: the event log does not answer (retry after `Retry-After`)']
      : []),
  ];
  if (unavailable.length > 0) {
    answers['503'] = problemResponse(`${unavailable.join('; ')}.`);
  }
  return answers;
}

/** RFC 9457 problem details as this service writes them (problem.ts). */
const PROBLEM_SCHEMA = {
  type: 'object',
  required: ['type', 'title', 'status', 'detail'],
  properties: {
    type: {
      type: 'string',
      description: '`/problems/<code>`: the stable code to branch on.',
      example: '/problems/subscription-not-active',
    },
    title: { type: 'string', description: 'The HTTP status in words.', example: 'Conflict' },
    status: { type: 'integer', example: 409 },
    detail: {
      type: 'string',
      description: 'What happened, in words (not stable).',
      example: 'The firm has no active MFA subscription.',
    },
    instance: {
      type: 'string',
      description: 'RFC 9457 member; not sent by this service (see X-Correlation-Id).',
    },
    errors: {
      type: 'array',
      description: 'Field-level errors of a 400 `validation-failed`.',
      items: {
        type: 'object',
        required: ['field', 'message'],
        properties: {
          field: { type: 'string', example: 'licenseCount' },
          message: { type: 'string', example: 'must not be less than 1' },
        },
      },
    },
    limit: {
      type: 'string',
      enum: ['user', 'caller-failures', 'firm-failures', 'address'],
      description: 'A 429: which rate limit refused the request.',
    },
    retryAfterSeconds: {
      type: 'integer',
      description: 'A 429 or a 423 `totp-locked`: as the Retry-After header.',
    },
    lockedUntil: {
      type: 'string',
      format: 'date-time',
      description: 'A 423 `totp-locked`: when TOTP verification opens again.',
    },
    verified: {
      type: 'boolean',
      enum: [false],
      description: 'A 401 of a login verification: always false.',
    },
    attemptsLeft: {
      type: 'integer',
      description: 'A 401 `invalid-code` at login: failed codes left before the lock.',
    },
    position: {
      type: 'string',
      pattern: '^\\d{1,20}$',
      description: 'A failed login verification is recorded: the log position of that record.',
    },
  },
  additionalProperties: true,
};
