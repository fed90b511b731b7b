import { Controller, Get, Param, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiPropertyOptional, ApiTags } from '@nestjs/swagger';
import { IsIn, IsOptional, IsString, Matches, MaxLength } from 'class-validator';
import { corporations } from '../../projections/corporations.projection';
import { enrolledUsers } from '../../projections/enrolled-users.projection';
import { licenseUsage } from '../../projections/license-usage.projection';
import { roleCounters } from '../../projections/role-counters.projection';
import { USER_ROLES, UserRole } from '../directory/user.decider';
import { Roles } from '../http/auth';
import { ReadsProjections } from '../http/min-position';
import { validationProblem } from '../http/problem';
import { ID_MESSAGE, IdPipe, ReadQuery } from '../http/validation';
import { ProjectionEngine } from '../projection-engine/projection-engine';
import { ID_PATTERN, isValidId } from '../shared/ids';

const SEARCH = /^[^\p{Cc}\p{Cs}]*$/u;
export const DEFAULT_PAGE = 50;
export const MAX_PAGE = 200;

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

  @ApiPropertyOptional({ description: 'Case-insensitive, anywhere in the text.', maxLength: 200 })
  @IsOptional()
  @IsString()
  @MaxLength(200)
  @Matches(SEARCH, { message: 'must be text without control characters' })
  search?: string;
}

export class EnrolledUsersQuery extends PageQuery {
  @ApiPropertyOptional({ enum: USER_ROLES })
  @IsOptional()
  @IsIn(USER_ROLES)
  role?: UserRole;

  @ApiPropertyOptional()
  @IsOptional()
  @Matches(ID_PATTERN, { message: ID_MESSAGE })
  corporationId?: string;
}

/** Page size from the query; out of range is a 400 like any other bad field. */
function pageSize(limit: string | undefined): number {
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
 * Cursors are opaque to clients: the sort key of the last item (lower-case
 * name, then id), so a page continues after that item even when entries were
 * added or removed meanwhile.
 */
export function encodeCursor(after: [string, string]): string {
  return Buffer.from(JSON.stringify(after)).toString('base64url');
}

function decodeCursor(cursor: string | undefined): [string, string] | undefined {
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

@ApiTags('Dashboards')
@ApiBearerAuth()
@Controller('v1/firms/:firmId')
export class DashboardsController {
  constructor(private readonly engine: ProjectionEngine) {}

  /** License count, seats in use, unutilized seats and usage percent. */
  @Get('mfa/usage')
  @Roles('superuser', 'operator')
  @ReadsProjections('license-usage')
  usage(@Param('firmId', IdPipe) firmId: string, @Query() _query: ReadQuery) {
    return licenseUsage(this.engine.reader('license-usage'), firmId);
  }

  /** MFA-enabled and enrolled users per role. */
  @Get('mfa/counters')
  @Roles('superuser', 'operator')
  @ReadsProjections('role-counters')
  counters(@Param('firmId', IdPipe) firmId: string, @Query() _query: ReadQuery) {
    return roleCounters(this.engine.reader('role-counters'), firmId);
  }

  /** Users holding a confirmed factor, sorted by name (case-insensitive) then user id. */
  @Get('mfa/enrolled-users')
  @Roles('superuser', 'operator')
  @ReadsProjections('enrolled-users')
  async enrolledUsers(@Param('firmId', IdPipe) firmId: string, @Query() query: EnrolledUsersQuery) {
    const limit = pageSize(query.limit);
    const after = decodeCursor(query.cursor);
    const page = await enrolledUsers(this.engine.reader('enrolled-users'), firmId, {
      search: query.search,
      role: query.role,
      corporationId: query.corporationId,
      limit,
      after,
    });
    return { items: page.items, nextCursor: page.next ? encodeCursor(page.next) : null };
  }

  /** The firm's corporations with their active corp users and foreign nationals, for the picker. */
  @Get('corporations')
  @Roles('superuser')
  @ReadsProjections('corporations')
  async corporations(@Param('firmId', IdPipe) firmId: string, @Query() query: PageQuery) {
    const limit = pageSize(query.limit);
    const after = decodeCursor(query.cursor);
    const page = await corporations(this.engine.reader('corporations'), firmId, {
      search: query.search,
      limit,
      after,
    });
    return { items: page.items, nextCursor: page.next ? encodeCursor(page.next) : null };
  }
}
