import { IQueryHandler, Query, QueryHandler as HandlesQuery } from '@nestjs/cqrs';
import { corporations } from '../../projections/corporations.projection';
import { enrolledUsers } from '../../projections/enrolled-users.projection';
import { LicenseUsage, licenseUsage } from '../../projections/license-usage.projection';
import { RoleCounters, roleCounters } from '../../projections/role-counters.projection';
import { UsageHistory, usageHistory } from '../../projections/usage-history.projection';
import { ProjectionEngine } from '../projection-engine/projection-engine';

/*
 * The dashboards' reads (API.md "Dashboards"): each asks one read model, in
 * the generation the engine serves, through the query its projection file
 * defines (projections/).
 */

type EnrolledUsersFilter = Parameters<typeof enrolledUsers>[2];
type EnrolledUsersPage = Awaited<ReturnType<typeof enrolledUsers>>;
type CorporationsFilter = Parameters<typeof corporations>[2];
type CorporationsPage = Awaited<ReturnType<typeof corporations>>;

/** License count, seats in use, unutilized seats and usage percent. */
export class GetLicenseUsage extends Query<LicenseUsage> {
  constructor(readonly firmId: string) {
    super();
  }
}

/**
 * Seats in use and the license count over a window of time, for the admin's
 * chart. `window`: milliseconds since the epoch; `now` stands for a missing `to`.
 */
export class GetUsageHistory extends Query<UsageHistory> {
  constructor(
    readonly firmId: string,
    readonly window: { from?: number; to?: number; now: number },
  ) {
    super();
  }
}

/** MFA-enabled and enrolled users per role. */
export class GetRoleCounters extends Query<RoleCounters> {
  constructor(readonly firmId: string) {
    super();
  }
}

/** A page of the users holding a confirmed factor, with the keyset of its last one. */
export class ListEnrolledUsers extends Query<EnrolledUsersPage> {
  constructor(
    readonly firmId: string,
    readonly filter: EnrolledUsersFilter,
  ) {
    super();
  }
}

/** A page of the firm's corporations for the admin's picker. */
export class ListCorporations extends Query<CorporationsPage> {
  constructor(
    readonly firmId: string,
    readonly filter: CorporationsFilter,
  ) {
    super();
  }
}

@HandlesQuery(GetLicenseUsage)
export class GetLicenseUsageHandler implements IQueryHandler<GetLicenseUsage> {
  constructor(private readonly engine: ProjectionEngine) {}

  execute({ firmId }: GetLicenseUsage) {
    return licenseUsage(this.engine.reader('license-usage'), firmId);
  }
}

@HandlesQuery(GetUsageHistory)
export class GetUsageHistoryHandler implements IQueryHandler<GetUsageHistory> {
  constructor(private readonly engine: ProjectionEngine) {}

  execute({ firmId, window }: GetUsageHistory) {
    return usageHistory(this.engine.reader('usage-history'), firmId, window);
  }
}

@HandlesQuery(GetRoleCounters)
export class GetRoleCountersHandler implements IQueryHandler<GetRoleCounters> {
  constructor(private readonly engine: ProjectionEngine) {}

  execute({ firmId }: GetRoleCounters) {
    return roleCounters(this.engine.reader('role-counters'), firmId);
  }
}

@HandlesQuery(ListEnrolledUsers)
export class ListEnrolledUsersHandler implements IQueryHandler<ListEnrolledUsers> {
  constructor(private readonly engine: ProjectionEngine) {}

  execute({ firmId, filter }: ListEnrolledUsers): Promise<EnrolledUsersPage> {
    return enrolledUsers(this.engine.reader('enrolled-users'), firmId, filter);
  }
}

@HandlesQuery(ListCorporations)
export class ListCorporationsHandler implements IQueryHandler<ListCorporations> {
  constructor(private readonly engine: ProjectionEngine) {}

  execute({ firmId, filter }: ListCorporations): Promise<CorporationsPage> {
    return corporations(this.engine.reader('corporations'), firmId, filter);
  }
}
