import { Controller, Get, Inject, Param, Query } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiOkResponse,
  ApiOperation,
  ApiPropertyOptional,
  ApiTags,
} from '@nestjs/swagger';
import {
  IsIn,
  IsOptional,
  IsString,
  Matches,
  MaxLength,
  ValidateBy,
  ValidationArguments,
} from 'class-validator';
import { QueryBus } from '@nestjs/cqrs';
import { USER_ROLES, UserRole } from '../directory/user.decider';
import { Roles } from '../http/auth';
import { decodeCursor, encodeCursor, PageQuery, pageSize } from '../http/paging';
import { ReadsProjections } from '../projection-engine/min-position';
import { ID_MESSAGE, IdPipe, ReadQuery } from '../http/validation';
import {
  GetLicenseUsage,
  GetRoleCounters,
  GetUsageHistory,
  ListCorporations,
  ListEnrolledUsers,
} from './dashboards.queries';
import { ID_PATTERN } from '../shared/ids';
import { CLOCK, Clock } from '../shared/clock';
import { INSTANT_MESSAGE, parseInstant } from '../shared/instant';
import { validationProblem } from '../http/problem';
import type { UsageHistory } from '../../projections/usage-history.projection';
import { apiSchema, ID, ISO_TIME, nullable, objectSchema, pageOf } from '../http/api-schemas';

const SEARCH = /^[^\p{Cc}\p{Cs}]*$/u;

/** A paged list with `?search=`. */
export class SearchQuery extends PageQuery {
  @ApiPropertyOptional({
    description: 'Anywhere in the text, ignoring case, accents and Unicode forms (ß = ss, ı = i).',
    maxLength: 200,
  })
  @IsOptional()
  @IsString()
  @MaxLength(200)
  @Matches(SEARCH, { message: 'must be text without control characters' })
  search?: string;
}

export class EnrolledUsersQuery extends SearchQuery {
  @ApiPropertyOptional({ enum: USER_ROLES })
  @IsOptional()
  @IsIn(USER_ROLES)
  role?: UserRole;

  @ApiPropertyOptional({ type: String, pattern: ID_PATTERN.source, example: 'corp-1' })
  @IsOptional()
  @Matches(ID_PATTERN, { message: ID_MESSAGE })
  corporationId?: string;
}

/** A moment as parseInstant reads it (ISO 8601 with its offset, or a date). */
const IsInstant = () =>
  ValidateBy({
    name: 'isInstant',
    validator: {
      validate: (value: unknown) => typeof value === 'string' && parseInstant(value) !== undefined,
      defaultMessage: () => INSTANT_MESSAGE,
    },
  });

/** `to` not before `from` (when both are moments). */
const NotBeforeFrom = () =>
  ValidateBy({
    name: 'notBeforeFrom',
    validator: {
      validate: (value: unknown, args?: ValidationArguments) => {
        const from = (args?.object as { from?: unknown } | undefined)?.from;
        if (typeof value !== 'string' || typeof from !== 'string') return true;
        const [start, end] = [parseInstant(from), parseInstant(value)];
        return start === undefined || end === undefined || start <= end;
      },
      defaultMessage: () => 'must not be before from',
    },
  });

/** `?from=&to=` of the usage history: both optional, ISO 8601, `from` not after `to`. */
export class UsageHistoryQuery extends ReadQuery {
  @ApiPropertyOptional({
    description:
      'Start of the window: ISO 8601 with its offset, or a date (midnight UTC). The first point ' +
      'is the usage as it stood then. Default: the first change.',
    example: '2026-01-01T00:00:00Z',
  })
  @IsOptional()
  @IsString()
  @MaxLength(64)
  @IsInstant()
  from?: string;

  @ApiPropertyOptional({
    description: 'End of the window (inclusive), not before `from`. Default: now, every change.',
    example: '2026-02-01T00:00:00Z',
  })
  @IsOptional()
  @IsString()
  @MaxLength(64)
  @IsInstant()
  @NotBeforeFrom()
  to?: string;
}

const COUNT = { type: 'integer', minimum: 0 } as const;

/** GET mfa/usage; also `usage` of the audit's state as of a moment. */
export const LICENSE_USAGE = apiSchema(
  'LicenseUsage',
  objectSchema(
    {
      status: { type: 'string', enum: ['none', 'requested', 'active', 'cancelled'] },
      licenseCount: COUNT,
      seatsInUse: { ...COUNT, description: 'Users holding a seat (a confirmed factor).' },
      unutilized: { ...COUNT, description: 'licenseCount - seatsInUse, never below 0.' },
      usagePercent: {
        ...COUNT,
        description: 'floor(100 * seatsInUse / licenseCount); 0 without licenses.',
      },
    },
    {
      example: {
        status: 'active',
        licenseCount: 50,
        seatsInUse: 40,
        unutilized: 10,
        usagePercent: 80,
      },
    },
  ),
);

const PER_ROLE = objectSchema({
  caseManagers: COUNT,
  vendorCaseManagers: COUNT,
  corpUsers: COUNT,
  foreignNationals: COUNT,
});
/** GET mfa/counters; also `counters` of the audit's state as of a moment. */
export const ROLE_COUNTERS = apiSchema(
  'RoleCounters',
  objectSchema(
    {
      enabled: { ...PER_ROLE, description: 'Active users for whom MFA is enabled, per role.' },
      enrolled: { ...PER_ROLE, description: 'Of those, the users holding a confirmed factor.' },
    },
    {
      example: {
        enabled: { caseManagers: 12, vendorCaseManagers: 3, corpUsers: 30, foreignNationals: 2 },
        enrolled: { caseManagers: 10, vendorCaseManagers: 1, corpUsers: 25, foreignNationals: 0 },
      },
    },
  ),
);

const ENROLLED_USER_EXAMPLE = {
  userId: 'u-1',
  name: 'Ada Lovelace',
  email: 'ada@corp.example',
  organization: 'Analytical Engines Ltd',
  role: 'corp-user',
  corporationId: 'corp-1',
  factors: ['totp'],
  enrolledAt: '2026-03-02T09:31:00.000Z',
  enforced: true,
};
/** An item of GET mfa/enrolled-users; also of the audit's state as of a moment. */
export const ENROLLED_USER = apiSchema(
  'EnrolledUser',
  objectSchema(
    {
      userId: ID,
      name: { type: 'string' },
      email: { type: 'string' },
      organization: nullable({ type: 'string' }),
      role: { type: 'string', enum: [...USER_ROLES] },
      corporationId: nullable({ ...ID, description: 'Null for roles without a corporation.' }),
      factors: { type: 'array', items: { type: 'string', enum: ['totp', 'webauthn'] } },
      enrolledAt: ISO_TIME,
      enforced: {
        type: 'boolean',
        description: 'MFA is enabled for the user now (false: enrolled, but not required).',
      },
    },
    { example: ENROLLED_USER_EXAMPLE },
  ),
);

/** The answer of GET mfa/usage/history (projections/usage-history.projection.ts `UsageHistory`). */
const USAGE_HISTORY_SCHEMA = {
  type: 'object',
  example: {
    from: '2026-03-01T00:00:00.000Z',
    to: '2026-03-02T10:00:00.000Z',
    licenseCount: 50,
    seatsInUse: 40,
    points: [
      {
        at: '2026-03-01T00:00:00.000Z',
        position: '0',
        seatsInUse: 39,
        licenseCount: 50,
        usagePercent: 78,
      },
      {
        at: '2026-03-02T09:31:00.000Z',
        position: '14',
        seatsInUse: 40,
        licenseCount: 50,
        usagePercent: 80,
      },
    ],
  },
  required: ['from', 'to', 'licenseCount', 'seatsInUse', 'points'],
  properties: {
    from: ISO_TIME,
    to: ISO_TIME,
    licenseCount: { ...COUNT, description: 'Now, as GET /mfa/usage.' },
    seatsInUse: { ...COUNT, description: 'Now, as GET /mfa/usage.' },
    points: {
      type: 'array',
      maxItems: 1000,
      items: {
        type: 'object',
        required: ['at', 'position', 'seatsInUse', 'licenseCount', 'usagePercent'],
        properties: {
          at: ISO_TIME,
          position: {
            type: 'string',
            pattern: '^\\d{1,20}$',
            description: 'The log position of the change; "0" for a start before any change.',
          },
          seatsInUse: COUNT,
          licenseCount: COUNT,
          usagePercent: {
            ...COUNT,
            description: 'floor(100 * seatsInUse / licenseCount); 0 without licenses.',
          },
        },
      },
    },
  },
};

/** Page size from the query; out of range is a 400 like any other bad field. */
@ApiTags('Dashboards')
@ApiBearerAuth()
@Controller('v1/firms/:firmId')
export class DashboardsController {
  constructor(
    private readonly queryBus: QueryBus,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  /** License count, seats in use, unutilized seats and usage percent. */
  @Get('mfa/usage')
  @Roles('superuser', 'operator')
  @ReadsProjections('license-usage')
  @ApiOperation({
    summary: 'License count, seats in use, unutilized seats and usage percent',
  })
  @ApiOkResponse({ description: "The firm's license usage.", schema: LICENSE_USAGE })
  usage(@Param('firmId', IdPipe) firmId: string, @Query() _query: ReadQuery) {
    return this.queryBus.execute(new GetLicenseUsage(firmId));
  }

  /** Seats in use against the license count over time, for the admin page's chart. */
  @Get('mfa/usage/history')
  @Roles('superuser', 'operator')
  @ReadsProjections('usage-history')
  @ApiOperation({
    summary: 'Seats in use and the license count over time',
    description:
      '`{ from, to, licenseCount, seatsInUse, points: [{ at, position, seatsInUse, licenseCount, ' +
      'usagePercent }] }`: one point per change of the license count or of the seats in use, in ' +
      'log order; `licenseCount` and `seatsInUse` are the figures now (as GET /mfa/usage) and ' +
      '`usagePercent` is computed as there. With `from`, the first point is the usage as it ' +
      'stood at `from`, timed `from`. At most 1,000 points: when more changes fall in the ' +
      'window, it is cut into equal time buckets, each keeping its point of highest ' +
      'usagePercent (a crossing of 80 % or 100 % always shows), and the last point is kept.',
  })
  @ApiOkResponse({
    description: 'The usage over the window.',
    schema: apiSchema('UsageHistory', USAGE_HISTORY_SCHEMA),
  })
  usageHistory(
    @Param('firmId', IdPipe) firmId: string,
    @Query() query: UsageHistoryQuery,
  ): Promise<UsageHistory> {
    const now = this.clock.now().getTime();
    const from = query.from === undefined ? undefined : parseInstant(query.from);
    const to = query.to === undefined ? undefined : parseInstant(query.to);
    // Without `to`, the window ends now: a `from` in the future leaves nothing to show.
    if (from !== undefined && to === undefined && from > now) {
      throw validationProblem([{ field: 'from', message: 'must not be in the future' }]);
    }
    return this.queryBus.execute(new GetUsageHistory(firmId, { from, to, now }));
  }

  /** MFA-enabled and enrolled users per role. */
  @Get('mfa/counters')
  @Roles('superuser', 'operator')
  @ReadsProjections('role-counters')
  @ApiOperation({
    summary: 'MFA-enabled and enrolled users per role',
  })
  @ApiOkResponse({ description: 'Enabled and enrolled users per role.', schema: ROLE_COUNTERS })
  counters(@Param('firmId', IdPipe) firmId: string, @Query() _query: ReadQuery) {
    return this.queryBus.execute(new GetRoleCounters(firmId));
  }

  /** Users holding a confirmed factor, sorted by name (case-insensitive) then user id. */
  @Get('mfa/enrolled-users')
  @Roles('superuser', 'operator')
  @ReadsProjections('enrolled-users')
  @ApiOperation({
    summary: 'Users holding a confirmed factor',
    description:
      'Sorted by name (case-insensitive), then userId. `search` matches name or organization anywhere in the text.',
  })
  @ApiOkResponse({
    description: 'A page of enrolled users.',
    schema: apiSchema('EnrolledUsersPage', pageOf(ENROLLED_USER, [ENROLLED_USER_EXAMPLE])),
  })
  async enrolledUsers(@Param('firmId', IdPipe) firmId: string, @Query() query: EnrolledUsersQuery) {
    const limit = pageSize(query.limit);
    const after = decodeCursor(query.cursor);
    const page = await this.queryBus.execute(
      new ListEnrolledUsers(firmId, {
        search: query.search,
        role: query.role,
        corporationId: query.corporationId,
        limit,
        after,
      }),
    );
    return { items: page.items, nextCursor: page.next ? encodeCursor(page.next) : null };
  }

  /** The firm's corporations with their active corp users and foreign nationals, for the picker. */
  @Get('corporations')
  @Roles('superuser')
  @ReadsProjections('corporations')
  @ApiOperation({
    summary: "The firm's corporations with their active corp users and foreign nationals",
    description: 'For the enablement picker; `search` matches the name.',
  })
  @ApiOkResponse({
    description: 'A page of corporations, sorted by name.',
    schema: apiSchema(
      'CorporationsPage',
      pageOf(
        objectSchema({
          corporationId: ID,
          name: {
            type: 'string',
            description: 'As registered; the id until the host registers a name.',
          },
          corpUsers: { ...COUNT, description: 'Active corp users of the corporation.' },
          foreignNationals: { ...COUNT, description: 'Active foreign nationals.' },
        }),
        [{ corporationId: 'corp-1', name: 'Corp One', corpUsers: 30, foreignNationals: 2 }],
      ),
    ),
  })
  async corporations(@Param('firmId', IdPipe) firmId: string, @Query() query: SearchQuery) {
    const limit = pageSize(query.limit);
    const after = decodeCursor(query.cursor);
    const page = await this.queryBus.execute(
      new ListCorporations(firmId, { search: query.search, limit, after }),
    );
    return { items: page.items, nextCursor: page.next ? encodeCursor(page.next) : null };
  }
}
