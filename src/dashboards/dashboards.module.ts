import { Module } from '@nestjs/common';
import { CqrsModule } from '@nestjs/cqrs';
import { DashboardsController } from './dashboards.controller';
import {
  GetLicenseUsageHandler,
  GetRoleCountersHandler,
  GetUsageHistoryHandler,
  ListCorporationsHandler,
  ListEnrolledUsersHandler,
} from './dashboards.queries';

/** The firm admin's dashboards, read from the projections (API.md "Dashboards"). */
@Module({
  imports: [CqrsModule],
  controllers: [DashboardsController],
  providers: [
    GetLicenseUsageHandler,
    GetRoleCountersHandler,
    GetUsageHistoryHandler,
    ListEnrolledUsersHandler,
    ListCorporationsHandler,
  ],
})
export class DashboardsModule {}
