import { Module } from '@nestjs/common';
import { APP_FILTER, APP_GUARD, APP_INTERCEPTOR } from '@nestjs/core';
import { IdempotencyInterceptor } from '../command-handling/idempotency';
import { NotificationsModule } from '../notifications/notifications.module';
import { ProjectionsModule } from '../projection-engine/projections.module';
import { AuthGuard } from './auth';
import { HealthController } from './health.controller';
import { ProblemFilter } from './problem.filter';
import { EdgeRateLimits, RateLimitGuard } from './rate-limits';

/**
 * The HTTP edge for every route: authentication and authorization, the rate
 * limits, Idempotency-Key, problem+json (docs/security.md), and /health.
 */
@Module({
  imports: [ProjectionsModule, NotificationsModule],
  controllers: [HealthController],
  providers: [
    EdgeRateLimits,
    { provide: APP_GUARD, useClass: AuthGuard },
    // After AuthGuard (global guards run in this order): only authorized requests count.
    { provide: APP_GUARD, useClass: RateLimitGuard },
    { provide: APP_INTERCEPTOR, useClass: IdempotencyInterceptor },
    { provide: APP_FILTER, useClass: ProblemFilter },
  ],
  exports: [EdgeRateLimits],
})
export class HttpModule {}
