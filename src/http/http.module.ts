import { Module } from '@nestjs/common';
import { APP_FILTER, APP_GUARD, APP_INTERCEPTOR } from '@nestjs/core';
import { IdempotencyInterceptor } from './idempotency';
import { AuthGuard } from './auth';
import { ProblemFilter } from './problem.filter';
import { EdgeRateLimits, RateLimitGuard } from './rate-limits';

/**
 * The HTTP edge for every route: authentication and authorization, the rate
 * limits, Idempotency-Key and problem+json (docs/security.md).
 */
@Module({
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
