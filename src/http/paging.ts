import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, IsString, Matches, MaxLength } from 'class-validator';
import { isValidId } from '../shared/ids';
import { validationProblem } from './problem';
import { ReadQuery } from './validation';

/** Items a page holds when the caller does not say (`?limit=`), and at most. */
export const DEFAULT_PAGE = 50;
export const MAX_PAGE = 200;

/** The query of a paged list: `?limit=&cursor=` (API.md, Conventions), and `?minPosition=`. */
export class PageQuery extends ReadQuery {
  @ApiPropertyOptional({ description: `Page size, 1-${MAX_PAGE} (default ${DEFAULT_PAGE}).` })
  @IsOptional()
  @Matches(/^\d{1,6}$/, { message: `must be a whole number from 1 to ${MAX_PAGE}` })
  limit?: string;

  @ApiPropertyOptional({ description: 'The `nextCursor` of the previous page.' })
  @IsOptional()
  @IsString()
  @MaxLength(1024)
  cursor?: string;
}

/** `?limit=`, already checked as digits by the query DTO: 1 to MAX_PAGE, else 400. */
export function pageSize(limit: string | undefined): number {
  if (limit === undefined) return DEFAULT_PAGE;
  const value = Number(limit);
  if (value < 1 || value > MAX_PAGE) {
    throw validationProblem([
      { field: 'limit', message: `must be a whole number from 1 to ${MAX_PAGE}` },
    ]);
  }
  return value;
}

/**
 * Cursors are opaque to clients: the sort key of the last item of a page (a
 * text, then an id), so the next page continues after that item even when
 * items were added or removed meanwhile.
 */
export function encodeCursor(after: [string, string]): string {
  return Buffer.from(JSON.stringify(after)).toString('base64url');
}

/** A cursor this service made, or 400: never a key a client composed. */
export function decodeCursor(cursor: string | undefined): [string, string] | undefined {
  if (cursor === undefined) return undefined;
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    decoded = undefined;
  }
  if (
    !Array.isArray(decoded) ||
    decoded.length !== 2 ||
    typeof decoded[0] !== 'string' ||
    !isValidId(decoded[1]) ||
    encodeCursor([decoded[0], decoded[1]]) !== cursor
  ) {
    throw validationProblem([
      { field: 'cursor', message: 'must be a nextCursor this endpoint returned' },
    ]);
  }
  return [decoded[0], decoded[1]];
}
