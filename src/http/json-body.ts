import type { FastifyInstance, FastifyRequest } from 'fastify';
import { FieldError, problem, ProblemException, validationProblem } from './problem';

/**
 * Names that every plain object inherits from Object.prototype. class-validator
 * looks a body's keys up in a plain object of known properties, so a body key
 * such as `toString` or `constructor` "is known" and passes `whitelist`; and
 * `__proto__` is the classic prototype-pollution key. None is a field of any
 * body or query here: each is refused like an unknown field.
 */
const PROTOTYPE_NAMES: ReadonlySet<string> = new Set(Object.getOwnPropertyNames(Object.prototype));

/** Decodes strictly: invalid UTF-8 is refused rather than turned into U+FFFD and stored. */
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

const malformed = (detail: string) => new ProblemException(problem(400, 'malformed-json', detail));

/**
 * The only body parser of the service (`application/json`):
 * strict UTF-8, JSON.parse, then one bounded walk over the value that refuses
 * nesting deeper than `maxDepth` and keys named like Object.prototype members.
 * All of this happens before authentication, validation or any handler sees
 * the body, so a hostile body costs one parse and one walk of at most the body
 * limit (64 KiB), and nothing downstream recurses over an unbounded structure
 * (class-transformer and class-validator do, and overflowed the stack at about
 * 1,300 levels).
 */
export function installJsonBodyParser(fastify: FastifyInstance, maxDepth: number): void {
  fastify.removeContentTypeParser('application/json');
  fastify.addContentTypeParser(
    'application/json',
    { parseAs: 'buffer' },
    (
      _request: FastifyRequest,
      body: Buffer | string,
      done: (e: Error | null, v?: unknown) => void,
    ) => {
      try {
        done(null, parseJsonBody(body, maxDepth));
      } catch (error) {
        done(error as Error);
      }
    },
  );
}

/**
 * Parses a request body. Throws a ProblemException: 400 `malformed-json` for
 * bytes that are not UTF-8 JSON or nest deeper than `maxDepth`; 400
 * `validation-failed` naming each key that is an Object.prototype member and
 * each key or string that spells a lone surrogate.
 */
export function parseJsonBody(body: Buffer | string, maxDepth: number): unknown {
  let text: string;
  try {
    text = typeof body === 'string' ? body : utf8.decode(body);
  } catch {
    throw malformed('The body is not valid UTF-8.');
  }
  if (text.trim() === '') throw malformed('The body is empty; send a JSON value.');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw malformed('The body is not valid JSON.');
  }
  const errors = inspect(value, maxDepth);
  if (errors === 'too-deep') {
    throw new ProblemException(
      problem(
        400,
        'json-too-deep',
        `The body nests arrays and objects deeper than ${maxDepth} levels.`,
      ),
    );
  }
  if (errors.length > 0) throw validationProblem(errors);
  return value;
}

/**
 * The field errors for keys named like Object.prototype members anywhere in a
 * value (a query object or a parsed body), `[]` when there are none.
 */
export function prototypeKeyErrors(value: unknown, maxDepth: number): FieldError[] {
  const errors = inspect(value, maxDepth);
  return errors === 'too-deep' ? [] : errors;
}

/**
 * A string spelling a lone UTF-16 surrogate (`"\ud800"`: valid JSON, valid
 * UTF-8 bytes) is not text. It is the escape-level twin of invalid UTF-8, and
 * an event holding one could not be hashed (RFC 8785 refuses it; ADR 0017).
 */
const NOT_TEXT = 'must be text: a lone UTF-16 surrogate is not a character';
/** In a `u` expression a well-formed pair is one code point: only a lone surrogate is `Cs`. */
const LONE_SURROGATE = /\p{Cs}/u;

/** One walk, depth-first, that stops as soon as it passes `maxDepth`. */
function inspect(value: unknown, maxDepth: number): FieldError[] | 'too-deep' {
  const errors: FieldError[] = [];
  const walk = (node: unknown, path: string, depth: number): boolean => {
    if (typeof node === 'string') {
      if (LONE_SURROGATE.test(node)) errors.push({ field: path, message: NOT_TEXT });
      return true;
    }
    if (node === null || typeof node !== 'object') return true;
    if (depth > maxDepth) return false;
    if (Array.isArray(node)) {
      for (let index = 0; index < node.length; index++) {
        if (!walk(node[index], `${path}[${index}]`, depth + 1)) return false;
      }
      return true;
    }
    for (const key of Object.keys(node)) {
      const field = path ? `${path}.${key}` : key;
      if (PROTOTYPE_NAMES.has(key)) {
        errors.push({ field, message: 'should not exist' });
        continue;
      }
      if (LONE_SURROGATE.test(key)) {
        errors.push({ field, message: NOT_TEXT });
        continue;
      }
      if (!walk((node as Record<string, unknown>)[key], field, depth + 1)) return false;
    }
    return true;
  };
  return walk(value, '', 1) ? errors : 'too-deep';
}
