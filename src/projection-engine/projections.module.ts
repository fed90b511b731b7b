import {
  DynamicModule,
  Inject,
  Injectable,
  Module,
  OnModuleInit,
  SetMetadata,
} from '@nestjs/common';
import { DiscoveryModule, DiscoveryService } from '@nestjs/core';
import { AppConfig, APP_CONFIG } from '../config/config';
import { EVENT_STORE, EventStore } from '../event-store/event-store.port';
import { READ_MODEL_STORE, ReadModelStore } from '../read-model/read-model-store.port';
import type { Projection } from './projection';
import type { ProcessManager } from './process-manager';
import { ProjectionEngine } from './projection-engine';

const PROCESS_MANAGER = 'mfa:process-manager';

/**
 * Marks a provider as a process manager (it implements ProcessManager): the
 * projection engine finds it at start and runs it on the log, one owner at a
 * time across instances. The feature module that owns it only lists it among
 * its providers; nothing else needs to know it exists.
 */
export const ProcessManagerProvider = () => SetMetadata(PROCESS_MANAGER, true);

/** The process managers found at start (ProcessManager[]), filled before the engine starts. */
export const PROCESS_MANAGERS = Symbol('ProcessManagers');

/** Finds the marked providers before the engine starts (every module is initialised first). */
@Injectable()
class ProcessManagerDiscovery implements OnModuleInit {
  constructor(
    private readonly discovery: DiscoveryService,
    @Inject(PROCESS_MANAGERS) private readonly managers: ProcessManager[],
  ) {}

  onModuleInit(): void {
    const found = this.discovery
      .getProviders()
      .filter(
        (wrapper) =>
          wrapper.metatype && Reflect.getMetadata(PROCESS_MANAGER, wrapper.metatype) === true,
      )
      .map((wrapper) => wrapper.instance as ProcessManager)
      .sort((a, b) => a.name.localeCompare(b.name));
    this.managers.splice(0, this.managers.length, ...found);
  }
}

/**
 * The read side: every projection and process manager on the global log, each
 * from its own checkpoint, and "has this position been applied?" for
 * read-your-writes (src/projection-engine, ADR 0009). Which projections run
 * is the application's choice (`forRoot(ALL_PROJECTIONS)` in app.module.ts):
 * the engine knows the Projection shape, not the projections, so that the
 * slices that use the engine's ports and the projections that use the
 * slices' rules never make a cycle through it.
 */
@Module({})
export class ProjectionsModule {
  static forRoot(projections: readonly Projection[]): DynamicModule {
    return {
      module: ProjectionsModule,
      imports: [DiscoveryModule],
      providers: [
        { provide: PROCESS_MANAGERS, useValue: [] },
        ProcessManagerDiscovery,
        {
          provide: ProjectionEngine,
          useFactory: (
            events: EventStore,
            readModels: ReadModelStore,
            config: AppConfig,
            managers: ProcessManager[],
          ) =>
            new ProjectionEngine(events, readModels, {
              projections,
              // Filled by ProcessManagerDiscovery before the engine starts: the engine keeps this array.
              processManagers: managers,
              leases: config.processLease,
            }),
          inject: [EVENT_STORE, READ_MODEL_STORE, APP_CONFIG, PROCESS_MANAGERS],
        },
      ],
      exports: [ProjectionEngine, PROCESS_MANAGERS],
      global: true,
    };
  }
}
