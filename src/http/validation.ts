import {
  ArgumentMetadata,
  Injectable,
  PipeTransform,
  ValidationError,
  ValidationPipe,
} from '@nestjs/common';
import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, Matches } from 'class-validator';
import { isValidId } from '../shared/ids';
import { prototypeKeyErrors } from './json-body';
import { FieldError, validationProblem } from './problem';

/** Whitelisted, strictly typed bodies: unknown fields and wrong types are a 400 with field errors. */
export function createValidationPipe(maxDepth: number): ValidationPipe {
  return new StrictValidationPipe(maxDepth, {
    whitelist: true,
    forbidNonWhitelisted: true,
    // true would refuse the empty body classes ({}) of commands that take no input.
    forbidUnknownValues: false,
    transform: true,
    transformOptions: { enableImplicitConversion: false },
    validationError: { target: false, value: false },
    exceptionFactory: (errors) => validationProblem(flatten(errors)),
  });
}

/**
 * A JSON body must be an object: `5`, `"x"` or `[]` are refused before class
 * validation sees them. Keys named like Object.prototype members (`toString`,
 * `constructor`) are refused as unknown fields here too, for queries as for
 * bodies: class-validator's whitelist takes them for known properties.
 */
class StrictValidationPipe extends ValidationPipe {
  constructor(
    private readonly maxDepth: number,
    options: ConstructorParameters<typeof ValidationPipe>[0],
  ) {
    super(options);
  }

  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    if (
      metadata.type === 'body' &&
      value !== undefined &&
      (typeof value !== 'object' || value === null || Array.isArray(value))
    ) {
      throw validationProblem([{ field: 'body', message: 'must be a JSON object' }]);
    }
    if (metadata.type === 'body' || metadata.type === 'query') {
      const errors = prototypeKeyErrors(value, this.maxDepth);
      if (errors.length > 0) throw validationProblem(errors);
    }
    return super.transform(value, metadata);
  }
}

function flatten(errors: ValidationError[], parent = ''): FieldError[] {
  return errors.flatMap((error) => {
    const field = parent ? `${parent}.${error.property}` : error.property;
    const own = Object.values(error.constraints ?? {}).map((message) => ({
      field,
      message: withoutPrefix(
        withoutPrefix(message, `property ${error.property} `),
        `${error.property} `,
      ),
    }));
    return [...own, ...flatten(error.children ?? [], field)];
  });
}

/**
 * class-validator starts its messages with the property's name, which the
 * answer gives as `field` already. Compared as text: a body's key is any
 * string, and made into a regular expression one such as `( ` threw (a 500).
 */
function withoutPrefix(message: string, prefix: string): string {
  return message.startsWith(prefix) ? message.slice(prefix.length) : message;
}

/** Printable text without control characters, not blank. */
export const TEXT = /^(?=[^\p{Cc}\p{Cs}]*[^\s\p{Cc}\p{Cs}])[^\p{Cc}\p{Cs}]+$/u;
export const TEXT_MESSAGE = 'must be non-blank text without control characters';

export const ID_MESSAGE = 'must be 1-128 characters of A-Z a-z 0-9 . _ : -, and not . or ..';

/** Path ids (firmId, userId, corporationId) follow the contract's id alphabet. */
@Injectable()
export class IdPipe implements PipeTransform<string, string> {
  transform(value: string, metadata: ArgumentMetadata): string {
    if (!isValidId(value)) {
      throw validationProblem([
        {
          field: metadata.data ?? 'id',
          message: ID_MESSAGE,
        },
      ]);
    }
    return value;
  }
}

/** A log position as a query gives it: 1 to 20 digits (a bigint of the store's log). */
export const LOG_POSITION_PATTERN = /^\d{1,20}$/;

/**
 * What `minPosition` does on a read answered from the event log itself (a
 * resource's own stream) rather than from a read model: nothing to wait for.
 * Reads from read models say otherwise (ReadsProjections, min-position.ts).
 */
export const STREAM_READ_MIN_POSITION =
  'Accepted as on every read (digits, else 400), never waited on: this answer is read from ' +
  'the event log itself, so it already includes every position a command has answered.';

/** Every GET may name the log position it needs to see (read-your-writes). */
export class ReadQuery {
  @ApiPropertyOptional({
    description: STREAM_READ_MIN_POSITION,
    pattern: LOG_POSITION_PATTERN.source,
    example: '42',
  })
  @IsOptional()
  @Matches(LOG_POSITION_PATTERN, { message: 'must be a log position (digits)' })
  minPosition?: string;
}

/** The body of a command that takes none: `{}`, and no field at all (unknown fields are refused). */
export class EmptyBody {}
