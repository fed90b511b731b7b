/*
 * docs/http-api.md, rendered from the OpenAPI description the service serves
 * (/openapi.json). The description is the contract (the routes, their roles,
 * bodies, answers and problems are read from the code that serves them), so
 * the Markdown is generated from it rather than written beside it:
 * test/http/openapi-contract.spec.ts fails when the committed file differs
 * from what this renders, and rewrites it with UPDATE_HTTP_API_DOC=1.
 */

export type Schema = Record<string, any>;

export interface OpenApiDocument {
  info: { title: string; description?: string; version: string };
  tags?: Array<{ name: string; description?: string }>;
  paths: Record<string, Record<string, OpenApiOperation>>;
  components: { schemas: Record<string, Schema> };
}

export interface OpenApiOperation {
  summary?: string;
  description?: string;
  operationId?: string;
  tags?: string[];
  parameters?: Array<{
    name: string;
    in: string;
    required?: boolean;
    description?: string;
    schema?: Schema;
    example?: unknown;
  }>;
  requestBody?: { required?: boolean; content: Record<string, { schema?: Schema }> };
  responses: Record<
    string,
    { description?: string; content?: Record<string, { schema?: Schema; example?: unknown }> }
  >;
  'x-roles'?: string[];
}

export const METHODS = ['get', 'put', 'post', 'delete'] as const;

/** Every operation of the description, in its order: [method, path, operation]. */
export function operationsOf(document: OpenApiDocument): Array<[string, string, OpenApiOperation]> {
  return Object.entries(document.paths).flatMap(([path, item]) =>
    METHODS.filter((method) => item[method]).map(
      (method) => [method, path, item[method]] as [string, string, OpenApiOperation],
    ),
  );
}

const refName = (ref: string) => ref.replace('#/components/schemas/', '');
const anchorOf = (name: string) =>
  name
    .toLowerCase()
    .replace(/[^a-z0-9 -]/g, '')
    .replace(/ /g, '-');
const cell = (text: string) =>
  text
    .replace(/\|/g, '\\|')
    .replace(/\s*\n\s*/g, ' ')
    .trim();

/** A schema as a short type: `string`, `"a" | "b"`, `[Name](#name)[]`, `integer | null`. */
function typeOf(schema: Schema | undefined): string {
  if (!schema) return 'any';
  if (schema.$ref) {
    const name = refName(schema.$ref);
    return `[${name}](#${anchorOf(name)})`;
  }
  let type: string;
  if (schema.oneOf) type = (schema.oneOf as Schema[]).map(typeOf).join(' \\| ');
  else if (schema.enum)
    type = (schema.enum as unknown[]).map((v) => `\`${JSON.stringify(v)}\``).join(' \\| ');
  else if (schema.type === 'array') type = `${typeOf(schema.items)}[]`;
  else type = String(schema.type ?? 'any');
  if (schema.format) type += ` (${schema.format})`;
  return schema.nullable ? `${type} \\| null` : type;
}

/** The fields of an object schema, nested objects as `parent.child`, arrays of objects as `parent[].child`. */
function fieldRows(schema: Schema, prefix = ''): string[] {
  const required = new Set<string>(schema.required ?? []);
  return Object.entries((schema.properties ?? {}) as Record<string, Schema>).flatMap(
    ([name, property]) => {
      const field = `${prefix}${name}`;
      const notes = [
        property.description,
        property.pattern ? `pattern \`${property.pattern}\`` : '',
        property.minimum !== undefined || property.maximum !== undefined
          ? `${property.minimum ?? ''}…${property.maximum ?? ''}`
          : '',
        property.maxLength !== undefined ? `at most ${property.maxLength} characters` : '',
      ].filter(Boolean);
      const meaning = notes.map((note) => String(note).replace(/\.$/, '')).join('; ');
      const row = `| \`${field}\` | ${typeOf(property)} | ${required.has(name) ? 'yes' : 'no'} | ${cell(meaning)} |`;
      const nested =
        property.type === 'object' && property.properties
          ? fieldRows(property, `${field}.`)
          : property.type === 'array' &&
              property.items?.type === 'object' &&
              property.items.properties
            ? fieldRows(property.items, `${field}[].`)
            : [];
      return [row, ...nested];
    },
  );
}

/** The schema's own example, or one assembled from its properties' examples. */
function exampleOf(schema: Schema | undefined, document: OpenApiDocument, depth = 0): unknown {
  if (!schema || depth > 5) return undefined;
  if (schema.example !== undefined) return schema.example;
  if (schema.$ref)
    return exampleOf(document.components.schemas[refName(schema.$ref)], document, depth + 1);
  if (schema.type === 'object' && schema.properties) {
    const entries = Object.entries(schema.properties as Record<string, Schema>)
      .map(([name, property]) => [name, exampleOf(property, document, depth + 1)] as const)
      .filter(([, value]) => value !== undefined);
    return Object.fromEntries(entries);
  }
  return undefined;
}

const json = (value: unknown) => ['```json', JSON.stringify(value, null, 2), '```'];

function renderOperation(
  method: string,
  path: string,
  operation: OpenApiOperation,
  document: OpenApiDocument,
): string[] {
  const lines = [`### \`${method.toUpperCase()} ${path}\``, ''];
  if (operation.summary) lines.push(`**${operation.summary}.**`, '');
  if (operation.description) lines.push(operation.description.trim(), '');
  const parameters = operation.parameters ?? [];
  if (parameters.length > 0) {
    lines.push('| parameter | in | required | type | meaning |', '|---|---|---|---|---|');
    for (const parameter of parameters) {
      lines.push(
        `| \`${parameter.name}\` | ${parameter.in} | ${parameter.required ? 'yes' : 'no'} | ${typeOf(parameter.schema)} | ${cell(parameter.description ?? '')} |`,
      );
    }
    lines.push('');
  }
  if (operation.requestBody) {
    const [type, media] = Object.entries(operation.requestBody.content)[0];
    lines.push(`Body (\`${type}\`): ${typeOf(media.schema)}`, '');
    const example = exampleOf(media.schema, document);
    if (example !== undefined && Object.keys(example as object).length > 0)
      lines.push(...json(example), '');
  }
  for (const [status, response] of Object.entries(operation.responses)) {
    if (!status.startsWith('2')) continue;
    const [type, media] = Object.entries(response.content ?? {})[0] ?? ['', {}];
    lines.push(
      `Answer **${status}**${type ? ` (\`${type}\`)` : ''}: ${typeOf(media.schema)}. ${response.description ?? ''}`.trim(),
      '',
    );
    const example = media.example ?? exampleOf(media.schema, document);
    if (example !== undefined) lines.push(...json(example), '');
  }
  const problems = Object.entries(operation.responses).filter(([status]) => Number(status) >= 400);
  if (problems.length > 0) {
    lines.push('| problem | when |', '|---|---|');
    for (const [status, response] of problems)
      lines.push(`| ${status} | ${cell(response.description ?? '')} |`);
    lines.push('');
  }
  return lines;
}

/** docs/http-api.md for `document`. */
export function renderHttpApiDoc(document: OpenApiDocument): string {
  const operations = operationsOf(document);
  const tags = (document.tags ?? []).map((tag) => tag.name);
  for (const [, , operation] of operations) {
    for (const tag of operation.tags ?? []) if (!tags.includes(tag)) tags.push(tag);
  }
  const lines = [
    `# ${document.info.title} HTTP API (v${document.info.version})`,
    '',
    "<!-- Generated from the service's /openapi.json by test/support/http-api-doc.ts: do not edit by hand.",
    '     Change the description in the code, then run',
    '     UPDATE_HTTP_API_DOC=1 npx jest test/http/openapi-contract.spec.ts -->',
    '',
    'The HTTP contract a host application codes against. The running service serves the same',
    'description as OpenAPI 3 at `/openapi.json` (and `/openapi.yaml`), browsable at `/docs`. This',
    'page is generated from it rather than written beside the code, so that it cannot drift: the',
    'routes, roles, bodies, answers and problems below are read from the code that serves them,',
    'and `test/http/openapi-contract.spec.ts` fails when this file differs from what the running',
    'service describes, and when a real answer does not match the schema declared here.',
    '',
    (document.info.description ?? '').trim(),
    '',
    '## Routes',
    '',
  ];
  for (const tag of tags) {
    lines.push(`- [${tag}](#${anchorOf(tag)})`);
    for (const [method, path, operation] of operations.filter(([, , op]) =>
      op.tags?.includes(tag),
    )) {
      lines.push(
        `  - \`${method.toUpperCase()} ${path}\`${operation.summary ? ` — ${operation.summary}` : ''}`,
      );
    }
  }
  lines.push('');
  for (const tag of tags) {
    lines.push(`## ${tag}`, '');
    const description = document.tags?.find((t) => t.name === tag)?.description;
    if (description) lines.push(description, '');
    for (const [method, path, operation] of operations.filter(([, , op]) =>
      op.tags?.includes(tag),
    )) {
      lines.push(...renderOperation(method, path, operation, document));
    }
  }
  lines.push('## Schemas', '');
  for (const [name, schema] of Object.entries(document.components.schemas)) {
    lines.push(`### ${name}`, '');
    if (schema.description) lines.push(schema.description, '');
    if (schema.oneOf) {
      for (const variant of schema.oneOf as Schema[]) {
        lines.push(`One of: ${variant.description ?? typeOf(variant)}`, '');
        lines.push(
          '| field | type | required | meaning |',
          '|---|---|---|---|',
          ...fieldRows(variant),
          '',
        );
      }
    } else if (schema.properties && Object.keys(schema.properties).length === 0) {
      lines.push('`{}`: no fields (any field is refused).', '');
    } else if (schema.properties) {
      lines.push(
        '| field | type | required | meaning |',
        '|---|---|---|---|',
        ...fieldRows(schema),
        '',
      );
    }
  }
  return `${lines
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim()}\n`;
}
