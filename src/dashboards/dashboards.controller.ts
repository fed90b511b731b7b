import { Controller, Get, Param, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiPropertyOptional, ApiTags } from '@nestjs/swagger';
import { IsIn, IsOptional, IsString, Matches, MaxLength } from 'class-validator';
import { QueryBus } from '@nestjs/cqrs';
import { USER_ROLES, UserRole } from '../directory/user.decider';
import { Roles } from '../http/auth';
import { decodeCursor, encodeCursor, PageQuery, pageSize } from '../http/paging';
import { ReadsProjections } from '../projection-engine/min-position';
import { ID_MESSAGE, IdPipe, ReadQuery } from '../http/validation';
import {
  GetLicenseUsage,
  GetRoleCounters,
  ListCorporations,
  ListEnrolledUsers,
} from './dashboards.queries';
import { ID_PATTERN } from '../shared/ids';

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

  @ApiPropertyOptional()
  @IsOptional()
  @Matches(ID_PATTERN, { message: ID_MESSAGE })
  corporationId?: string;
}

/** Page size from the query; out of range is a 400 like any other bad field. */
@ApiTags('Dashboards')
@ApiBearerAuth()
@Controller('v1/firms/:firmId')
export class DashboardsController {
  constructor(private readonly queryBus: QueryBus) {}

  /** License count, seats in use, unutilized seats and usage percent. */
  @Get('mfa/usage')
  @Roles('superuser', 'operator')
  @ReadsProjections('license-usage')
  usage(@Param('firmId', IdPipe) firmId: string, @Query() _query: ReadQuery) {
    return this.queryBus.execute(new GetLicenseUsage(firmId));
  }

  /** MFA-enabled and enrolled users per role. */
  @Get('mfa/counters')
  @Roles('superuser', 'operator')
  @ReadsProjections('role-counters')
  counters(@Param('firmId', IdPipe) firmId: string, @Query() _query: ReadQuery) {
    return this.queryBus.execute(new GetRoleCounters(firmId));
  }

  /** Users holding a confirmed factor, sorted by name (case-insensitive) then user id. */
  @Get('mfa/enrolled-users')
  @Roles('superuser', 'operator')
  @ReadsProjections('enrolled-users')
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
  async corporations(@Param('firmId', IdPipe) firmId: string, @Query() query: SearchQuery) {
    const limit = pageSize(query.limit);
    const after = decodeCursor(query.cursor);
    const page = await this.queryBus.execute(
      new ListCorporations(firmId, { search: query.search, limit, after }),
    );
    return { items: page.items, nextCursor: page.next ? encodeCursor(page.next) : null };
  }
}
