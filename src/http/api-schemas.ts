import { ID_PATTERN } from '../shared/ids';

/*
 * Named JSON schemas of the answers, for the OpenAPI description (openapi.ts
 * puts every registered schema into `components.schemas`). A controller
 * declares the shape of what it answers next to the route, with apiSchema,
 * and refers to it in `@ApiOkResponse({ schema })`; the same shapes are what
 * test/http/openapi-contract.spec.ts checks real answers against.
 */

/** A JSON schema as OpenAPI 3.0 writes it (`nullable`, `example`). */
export type JsonSchema = Record<string, unknown>;

const registered = new Map<string, JsonSchema>();

/**
 * Registers `schema` under `name` in the description's components and returns
 * a `$ref` to it. A name registered twice with another shape is a programming
 * error (two routes would claim to answer the same thing differently).
 */
export function apiSchema(name: string, schema: JsonSchema): { $ref: string } {
  const held = registered.get(name);
  if (held !== undefined && JSON.stringify(held) !== JSON.stringify(schema)) {
    throw new Error(`apiSchema: ${name} registered twice with different shapes`);
  }
  registered.set(name, schema);
  return { $ref: `#/components/schemas/${name}` };
}

/** Every schema registered so far, by name. */
export function registeredApiSchemas(): Record<string, JsonSchema> {
  return Object.fromEntries(registered);
}

/** A global log position as the service writes it: a decimal string (it can exceed 2^53). */
export const POSITION: JsonSchema = {
  type: 'string',
  pattern: '^\\d{1,20}$',
  description: 'A global log position, as a decimal string.',
  example: '42',
};

/** An id of the contract's alphabet (path ids, user ids, corporation ids). */
export const ID: JsonSchema = {
  type: 'string',
  pattern: ID_PATTERN.source,
  maxLength: 128,
};

export const ISO_TIME: JsonSchema = {
  type: 'string',
  format: 'date-time',
  example: '2026-03-02T09:30:00.000Z',
};

export const COUNT: JsonSchema = { type: 'integer', minimum: 0 };

/** `schema` or JSON null. */
export const nullable = (schema: JsonSchema): JsonSchema => ({ ...schema, nullable: true });

/**
 * An object schema whose properties are all required except those named in
 * `optional`. Answers may gain fields later (additive changes), so unknown
 * properties are allowed.
 */
export function objectSchema(
  properties: Record<string, JsonSchema>,
  extra: { optional?: string[]; description?: string; example?: unknown } = {},
): JsonSchema {
  const optional = new Set(extra.optional ?? []);
  return {
    type: 'object',
    ...(extra.description ? { description: extra.description } : {}),
    required: Object.keys(properties).filter((name) => !optional.has(name)),
    properties,
    ...(extra.example !== undefined ? { example: extra.example } : {}),
  };
}

/**
 * A command's answer: `{ position }` (the log position of its effect, API.md
 * "Commands") and the command's own fields.
 */
export function commandAnswer(
  properties: Record<string, JsonSchema>,
  extra: { optional?: string[]; description?: string; example?: Record<string, unknown> } = {},
): JsonSchema {
  return objectSchema(
    {
      position: {
        ...POSITION,
        description:
          'The log position of the effect: pass it as `minPosition` to a read to see it.',
      },
      ...properties,
    },
    extra,
  );
}

/** A page of a list: `{ items, nextCursor }` (API.md "Conventions", src/http/paging.ts). */
export function pageOf(item: JsonSchema, example: unknown[]): JsonSchema {
  return objectSchema(
    {
      items: { type: 'array', items: item },
      nextCursor: nullable({
        type: 'string',
        description: 'Pass as `cursor` for the next page; null on the last page.',
      }),
    },
    { example: { items: example, nextCursor: null } },
  );
}
