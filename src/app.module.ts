import { DynamicModule, Inject, Module, OnApplicationShutdown } from '@nestjs/common';
import { APP_FILTER, APP_GUARD, APP_INTERCEPTOR } from '@nestjs/core';
import { CommandHandler } from './command-handling/command-handler';
import { IdempotencyInterceptor } from './command-handling/idempotency';
import { IDEMPOTENCY_STORE, IdempotencyStore } from './command-handling/idempotency-store.port';
import { AppConfig } from './config/config';
import { ConfigModule } from './config/config.module';
import { KEY_STORE, KeyStore } from './crypto/key-store.port';
import { DashboardsController } from './dashboards/dashboards.controller';
import { DirectoryController } from './directory/directory.controller';
import { EnrollmentController } from './enrollment/enrollment.controller';
import { EnrollmentService } from './enrollment/enrollment.service';
import { SeatKeeper } from './enrollment/seat-keeper';
import { UserFacts } from './enrollment/user-facts';
import { EnablementController } from './enablement/enablement.controller';
import { EVENT_STORE, EventStore } from './event-store/event-store.port';
import { AuthGuard } from './http/auth';
import { HealthController } from './http/health.controller';
import { RATE_LIMIT_STORE, RateLimitStore } from './http/rate-limit-store';
import { EdgeRateLimits, RateLimitGuard } from './http/rate-limits';
import { MinPositionInterceptor } from './http/min-position';
import { PROCESS_MANAGERS, ProcessManager } from './projection-engine/process-manager';
import { ProjectionEngine } from './projection-engine/projection-engine';
import { READ_MODEL_STORE, ReadModelStore } from './read-model/read-model-store.port';
import { ProblemFilter } from './http/problem.filter';
import { MAIL_TRANSPORT, Mailer } from './notifications/mailer';
import { openMailTransport } from './notifications/mail-transport';
import { NotificationPolicy } from './notifications/notification-policy';
import { NotificationsController } from './notifications/notifications.controller';
import { LoginController } from './login/login.controller';
import { LoginService } from './login/login.service';
import { Clock, CLOCK } from './shared/clock';
import { SubscriptionController } from './subscription/subscription.controller';

/** What the application runs on; built by app.ts from the configuration (or by a test). */
export interface Infrastructure {
  config: AppConfig;
  eventStore: EventStore;
  readModelStore: ReadModelStore;
  idempotencyStore: IdempotencyStore;
  keyStore: KeyStore;
  /** Rate-limit counters every instance shares (state.sqlite, or MongoDB). */
  rateLimitStore: RateLimitStore;
  clock: Clock;
  /** Closes what the infrastructure opened (the stores), once the app is down. */
  close: () => Promise<void>;
}

const INFRASTRUCTURE = Symbol('Infrastructure');

class InfrastructureLifecycle implements OnApplicationShutdown {
  constructor(@Inject(INFRASTRUCTURE) private readonly infrastructure: Infrastructure) {}

  async onApplicationShutdown(): Promise<void> {
    await this.infrastructure.close();
  }
}

@Module({})
export class AppModule {
  static forRoot(infrastructure: Infrastructure): DynamicModule {
    return {
      module: AppModule,
      imports: [ConfigModule.forRoot(infrastructure.config)],
      controllers: [
        HealthController,
        SubscriptionController,
        EnablementController,
        DirectoryController,
        DashboardsController,
        EnrollmentController,
        LoginController,
        NotificationsController,
      ],
      providers: [
        { provide: INFRASTRUCTURE, useValue: infrastructure },
        { provide: EVENT_STORE, useValue: infrastructure.eventStore },
        { provide: READ_MODEL_STORE, useValue: infrastructure.readModelStore },
        // Process managers (consumers with side effects) run on the projection engine:
        // add the provider class to `providers` and to this factory's `inject`.
        {
          provide: PROCESS_MANAGERS,
          useFactory: (...managers: ProcessManager[]) => managers,
          inject: [SeatKeeper, NotificationPolicy, Mailer],
        },
        {
          provide: ProjectionEngine,
          useFactory: (
            events: EventStore,
            readModels: ReadModelStore,
            managers: ProcessManager[],
          ) =>
            new ProjectionEngine(events, readModels, {
              processManagers: managers,
              leases: infrastructure.config.processLease,
            }),
          inject: [EVENT_STORE, READ_MODEL_STORE, PROCESS_MANAGERS],
        },
        MinPositionInterceptor,
        { provide: IDEMPOTENCY_STORE, useValue: infrastructure.idempotencyStore },
        { provide: CLOCK, useValue: infrastructure.clock },
        { provide: KEY_STORE, useValue: infrastructure.keyStore },
        { provide: RATE_LIMIT_STORE, useValue: infrastructure.rateLimitStore },
        EdgeRateLimits,
        InfrastructureLifecycle,
        CommandHandler,
        UserFacts,
        SeatKeeper,
        NotificationPolicy,
        {
          provide: MAIL_TRANSPORT,
          useValue: openMailTransport(infrastructure.config.smtpUrl, infrastructure.config.dataDir),
        },
        Mailer,
        EnrollmentService,
        LoginService,
        { provide: APP_GUARD, useClass: AuthGuard },
        // After AuthGuard (global guards run in this order): only authorized requests count.
        { provide: APP_GUARD, useClass: RateLimitGuard },
        { provide: APP_INTERCEPTOR, useClass: IdempotencyInterceptor },
        { provide: APP_FILTER, useClass: ProblemFilter },
      ],
    };
  }
}
