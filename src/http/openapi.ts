import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import type { FastifyInstance } from 'fastify';
import { dirname, join } from 'node:path';
import { ID_PATTERN } from '../shared/ids';
import { PROBLEM_CONTENT_TYPE } from './problem';
import { CSS, fileOnDisk, HTML, JAVASCRIPT, servePageFiles } from './page-files';

type Operation = {
  description?: string;
  parameters?: Array<Record<string, unknown>>;
  responses: Record<string, unknown>;
  'x-roles'?: string[];
  'x-idempotency-key'?: 'ignored';
  'x-rate-limit'?: 'user' | 'verification';
};

const problemRef = { $ref: '#/components/schemas/Problem' };
const problemResponse = (description: string) => ({
  description,
  content: { [PROBLEM_CONTENT_TYPE]: { schema: problemRef } },
});

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
  const document = SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle('MFA Service')
      .setDescription(
        'Decides who must use multi-factor authentication, enrolls factors, verifies logins, ' +
          'counts licenses and keeps an auditable history.\n\n' +
          'Errors are RFC 9457 `application/problem+json` with a stable `type` of the form ' +
          '`/problems/<code>`. Commands answer the global log `position` of their effect, accept ' +
          'an `Idempotency-Key` header (the first answer is replayed for 24 h; keys are scoped ' +
          'by caller and by the firm in the path; the verification endpoints ignore it) and an ' +
          '`X-Correlation-Id` that every resulting event carries. Reads accept `minPosition`.',
      )
      .setVersion('1')
      .addBearerAuth({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' })
      .build(),
  );
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
    Problem: {
      type: 'object',
      required: ['type', 'title', 'status', 'detail'],
      properties: {
        type: { type: 'string', example: '/problems/subscription-not-active' },
        title: { type: 'string', example: 'Conflict' },
        status: { type: 'integer', example: 409 },
        detail: { type: 'string' },
        errors: {
          type: 'array',
          description: 'Field-level errors of a 400 `validation-failed`.',
          items: {
            type: 'object',
            properties: { field: { type: 'string' }, message: { type: 'string' } },
          },
        },
      },
    },
  };
  for (const [path, item] of Object.entries(document.paths)) {
    for (const [method, value] of Object.entries(item)) {
      if (!['get', 'put', 'post', 'delete'].includes(method)) continue;
      const operation = value as Operation;
      for (const parameter of operation.parameters ?? []) {
        if (parameter.in === 'path') {
          parameter.schema = { type: 'string', pattern: ID_PATTERN.source, maxLength: 128 };
        }
      }
      if (operation['x-roles']) {
        const roles = operation['x-roles'].map((role) => `\`${role}\``).join(', ');
        operation.description = `${operation.description ?? ''}\n\nRoles: ${roles}.`.trim();
        operation.responses['401'] = problemResponse('No valid bearer token.');
        operation.responses['403'] = problemResponse('Wrong role, another firm, or another user.');
        operation.responses['400'] = problemResponse(
          'Invalid input (`validation-failed` lists the fields).',
        );
      }
      if (operation['x-rate-limit']) {
        operation.responses['429'] = problemResponse(
          operation['x-rate-limit'] === 'verification'
            ? 'Too many requests for this user, or too many failed verifications by this caller or in this firm (`limit` says which); `Retry-After` gives the seconds to wait.'
            : 'Too many verification and enrollment requests for this user; `Retry-After` gives the seconds to wait.',
        );
      }
      if (method !== 'get' && path.startsWith('/v1/')) {
        const keyed = operation['x-idempotency-key'] !== 'ignored';
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
                },
              ]
            : []),
          {
            name: 'X-Correlation-Id',
            in: 'header',
            required: false,
            description: 'Carried by every event the command causes.',
            schema: { type: 'string', pattern: ID_PATTERN.source },
          },
        ];
        operation.responses['409'] = problemResponse(
          'A rule refused the command (see `type`); nothing was appended.',
        );
        if (keyed) {
          operation.responses['422'] = problemResponse(
            'The Idempotency-Key was used for another request.',
          );
        }
      }
    }
  }
}
