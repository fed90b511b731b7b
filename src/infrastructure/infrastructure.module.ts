import { DynamicModule, Global, Inject, Module, OnApplicationShutdown } from '@nestjs/common';
import { CommandHandler } from '../command-handling/command-handler';
import { IDEMPOTENCY_STORE, IdempotencyStore } from '../http/idempotency-store.port';
import type { AppConfig } from '../config/config';
import { APP_CONFIG } from '../config/config';
import { KEY_STORE, KeyStore } from '../crypto/key-store.port';
import { EVENT_STORE, EventStore } from '../event-store/event-store.port';
import { RATE_LIMIT_STORE, RateLimitStore } from '../http/rate-limit-store';
import { READ_MODEL_STORE, ReadModelStore } from '../read-model/read-model-store.port';
import { Clock, CLOCK } from '../shared/clock';

/** What the application runs on; opened by open-infrastructure.ts from the configuration (or by a test). */
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

/**
 * The stores, the clock, the configuration and the one generic command
 * handler (decide and append), for every feature module: global, so a slice
 * depends on the ports, never on how they were opened.
 */
@Global()
@Module({})
export class InfrastructureModule {
  static forRoot(infrastructure: Infrastructure): DynamicModule {
    const providers = [
      { provide: INFRASTRUCTURE, useValue: infrastructure },
      { provide: APP_CONFIG, useValue: infrastructure.config },
      { provide: EVENT_STORE, useValue: infrastructure.eventStore },
      { provide: READ_MODEL_STORE, useValue: infrastructure.readModelStore },
      { provide: IDEMPOTENCY_STORE, useValue: infrastructure.idempotencyStore },
      { provide: KEY_STORE, useValue: infrastructure.keyStore },
      { provide: RATE_LIMIT_STORE, useValue: infrastructure.rateLimitStore },
      { provide: CLOCK, useValue: infrastructure.clock },
    ];
    return {
      module: InfrastructureModule,
      providers: [...providers, InfrastructureLifecycle, CommandHandler],
      exports: [...providers.map((provider) => provider.provide), CommandHandler],
    };
  }
}
