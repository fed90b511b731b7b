import { DynamicModule, Module } from '@nestjs/common';
import { CqrsModule } from '@nestjs/cqrs';
import { ALL_PROJECTIONS } from '../projections';
import { AuditHttpModule } from './audit/audit-http.module';
import { AuditModule } from './audit/audit.module';
import { DashboardsModule } from './dashboards/dashboards.module';
import { DirectoryModule } from './directory/directory.module';
import { EnablementModule } from './enablement/enablement.module';
import { EnrollmentModule } from './enrollment/enrollment.module';
import { HttpModule } from './http/http.module';
import { Infrastructure, InfrastructureModule } from './infrastructure/infrastructure.module';
import { LoginModule } from './login/login.module';
import { NotificationsModule } from './notifications/notifications.module';
import { OperationsModule } from './operations/operations.module';
import { ProjectionsModule } from './projection-engine/projections.module';
import { SubscriptionModule } from './subscription/subscription.module';

/**
 * The service: the infrastructure it runs on, the HTTP edge, the read side,
 * and one feature module per capability (a vertical slice each). Commands and
 * queries go through @nestjs/cqrs's buses to thin handlers; durability stays
 * with the event store (ADR 0004).
 */
@Module({})
export class AppModule {
  static forRoot(infrastructure: Infrastructure): DynamicModule {
    return {
      module: AppModule,
      imports: [
        InfrastructureModule.forRoot(infrastructure),
        CqrsModule.forRoot(),
        HttpModule,
        ProjectionsModule.forRoot(ALL_PROJECTIONS),
        SubscriptionModule,
        EnablementModule,
        DirectoryModule,
        EnrollmentModule,
        LoginModule,
        DashboardsModule,
        NotificationsModule,
        OperationsModule,
        AuditModule,
        AuditHttpModule,
      ],
    };
  }
}

export type { Infrastructure };
