import { Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import type { Projection, ReadModelReader } from '../../projections/projection';
import { ALL_PROJECTIONS } from '../../projections';
import type { EventStore } from '../event-store/event-store.port';
import type {
  FindQuery,
  ReadModelDocument,
  ReadModelSchema,
  ReadModelStore,
  ReadModelTarget,
} from '../read-model/read-model-store.port';
import type { LeaseSettings } from './process-lease';
import { defaultLeaseSettings, ProcessManager, ProcessManagerRunner } from './process-manager';
import { EngineLogger, ProjectionRunner } from './projection-runner';

export interface ProjectionEngineOptions {
  projections?: readonly Projection[];
  processManagers?: readonly ProcessManager[];
  logger?: EngineLogger;
  /** How often other processes' rebuilds and skips are looked for. */
  watchIntervalMs?: number;
  /** Process managers' leases: TTL and renewal interval, and this instance's owner id (generated when omitted). */
  leases?: Partial<LeaseSettings>;
}

interface Tracked {
  projection: Projection;
  schema: ReadModelSchema;
  /** Writes the generation readers use. */
  reader: ProjectionRunner;
  /** Builds a newer generation; takes over once it has caught up with `reader`. */
  next?: { runner: ProjectionRunner; activateOnSwap: boolean };
}

interface Waiter {
  position: bigint;
  projections: readonly string[];
  resolve: (reached: boolean) => void;
  timer: NodeJS.Timeout;
}

export const schemaOf = (projection: Projection): ReadModelSchema => ({
  projection: projection.name,
  collections: projection.collections,
});

/**
 * Runs every projection and process manager of the service on the global log,
 * each from its own checkpoint, and answers "has this position been applied?"
 * for read-your-writes. A projection is served from its active generation;
 * a newer generation (a rebuild by `npm run projections -- rebuild`, or a
 * projection whose version changed) is followed beside it and replaces it
 * once it has caught up, so readers never see a half-built read model.
 */
export class ProjectionEngine implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly tracked = new Map<string, Tracked>();
  private readonly managers: ProcessManagerRunner[] = [];
  private waiters: Waiter[] = [];
  private watchTimer: NodeJS.Timeout | undefined;
  private watching = false;
  private stopped = false;
  private readonly logger: EngineLogger;
  private readonly projections: readonly Projection[];
  private readonly processManagers: readonly ProcessManager[];
  private readonly watchIntervalMs: number;
  /** One owner id for all of this instance's leases. */
  private readonly leases: LeaseSettings;

  constructor(
    private readonly eventStore: EventStore,
    private readonly store: ReadModelStore,
    options: ProjectionEngineOptions = {},
  ) {
    this.logger = options.logger ?? new Logger('Projections');
    this.projections = options.projections ?? ALL_PROJECTIONS;
    this.processManagers = options.processManagers ?? [];
    this.watchIntervalMs = options.watchIntervalMs ?? 500;
    this.leases = { ...defaultLeaseSettings(), ...options.leases };
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.start();
  }

  async onModuleDestroy(): Promise<void> {
    await this.stop();
  }

  async start(): Promise<void> {
    const names = new Set<string>();
    for (const manager of this.processManagers) {
      if (names.has(manager.name))
        throw new Error(`Two process managers are named ${manager.name}`);
      names.add(manager.name);
    }
    const active = await this.store.activeGenerations();
    const checkpoints = await this.store.listCheckpoints();
    for (const projection of this.projections) {
      const schema = schemaOf(projection);
      let generation = active.get(projection.name);
      if (generation === undefined) {
        generation = await this.store.createGeneration(projection.name, projection.version);
        await this.store.prepare(schema, generation);
        await this.store.activate({ projection: projection.name, generation });
      } else {
        await this.store.prepare(schema, generation);
      }
      // Generations older than the active one are leftovers of earlier rebuilds.
      for (const old of checkpoints) {
        if (old.projection === projection.name && old.generation < generation) {
          await this.store.dropGeneration(schema, old.generation);
        }
      }
      const reader = this.runner(projection, { projection: projection.name, generation });
      const tracked: Tracked = { projection, schema, reader };
      this.tracked.set(projection.name, tracked);
      const checkpoint = await this.store.checkpoint(reader.target);
      if (checkpoint && checkpoint.version !== projection.version) {
        this.logger.log(
          `Projection ${projection.name} changed (version ${checkpoint.version} -> ${projection.version}): ` +
            'rebuilding it beside the current one',
        );
        const next = await this.store.createGeneration(projection.name, projection.version);
        await this.store.prepare(schema, next);
        tracked.next = {
          runner: this.runner(projection, { projection: projection.name, generation: next }),
          activateOnSwap: true,
        };
      }
    }
    for (const tracked of this.tracked.values()) {
      await tracked.reader.start();
      await tracked.next?.runner.start();
    }
    for (const manager of this.processManagers) {
      const runner = new ProcessManagerRunner(
        this.eventStore,
        this.store,
        manager,
        this.logger,
        () => this.wakeWaiters(),
        undefined,
        this.leases,
      );
      this.managers.push(runner);
      await runner.start();
    }
    this.watchTimer = setInterval(() => void this.watch(), this.watchIntervalMs);
    this.watchTimer.unref();
  }

  private runner(projection: Projection, target: ReadModelTarget): ProjectionRunner {
    return new ProjectionRunner(this.eventStore, this.store, projection, target, {
      logger: this.logger,
      onProgress: () => this.progressed(projection.name),
    });
  }

  /** Notices what other processes did: a rebuilt generation activated, an event skipped. */
  private async watch(): Promise<void> {
    if (this.watching || this.stopped) return;
    this.watching = true;
    try {
      const active = await this.store.activeGenerations();
      for (const tracked of this.tracked.values()) {
        const generation = active.get(tracked.projection.name);
        await tracked.reader.checkSkips();
        await tracked.next?.runner.checkSkips();
        if (
          generation !== undefined &&
          generation > tracked.reader.target.generation &&
          tracked.next?.runner.target.generation !== generation
        ) {
          this.logger.log(
            `Projection ${tracked.projection.name}: generation ${generation} was activated; switching once it has caught up`,
          );
          await tracked.next?.runner.stop();
          await this.store.prepare(tracked.schema, generation);
          const runner = this.runner(tracked.projection, {
            projection: tracked.projection.name,
            generation,
          });
          tracked.next = { runner, activateOnSwap: false };
          await runner.start();
        }
      }
    } catch (error) {
      this.logger.warn(
        `Projection watch failed: ${error instanceof Error ? error.message : String(error)}`,
      );
    } finally {
      this.watching = false;
    }
  }

  private progressed(name: string): void {
    const tracked = this.tracked.get(name);
    if (tracked?.next) {
      const { runner, activateOnSwap } = tracked.next;
      if (runner.status === 'live' && runner.position >= tracked.reader.position) {
        tracked.next = undefined;
        void this.swap(tracked, runner, activateOnSwap);
      }
    }
    this.wakeWaiters();
  }

  private async swap(tracked: Tracked, runner: ProjectionRunner, activate: boolean): Promise<void> {
    const old = tracked.reader;
    if (activate) await this.store.activate(runner.target);
    tracked.reader = runner;
    this.logger.log(
      `Projection ${tracked.projection.name}: now served from generation ${runner.target.generation}`,
    );
    await old.stop();
    this.wakeWaiters();
  }

  /** The generation dashboard queries read. */
  reader(name: string): ReadModelReader {
    const tracked = this.tracked.get(name);
    if (!tracked) throw new Error(`Unknown projection ${name}`);
    const store = this.store;
    return {
      get: <T extends object = ReadModelDocument>(collection: string, id: string) =>
        store.get(tracked.reader.target, collection, id) as Promise<T | undefined>,
      find: <T extends object = ReadModelDocument>(collection: string, query: FindQuery) =>
        store.find(tracked.reader.target, collection, query) as unknown as Promise<T[]>,
    };
  }

  readerTarget(name: string): ReadModelTarget | undefined {
    return this.tracked.get(name)?.reader.target;
  }

  /**
   * Resolves true once every named projection or process manager (all
   * projections when none is named) has processed `position`, false after the
   * timeout. Woken by progress, never by a timer.
   */
  waitFor(position: bigint, projections: readonly string[], timeoutMs: number): Promise<boolean> {
    if (this.reached(position, projections)) return Promise.resolve(true);
    if (this.stopped) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiter: Waiter = {
        position,
        projections,
        resolve,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((w) => w !== waiter);
          resolve(false);
        }, timeoutMs).unref(),
      };
      this.waiters.push(waiter);
    });
  }

  private reached(position: bigint, names: readonly string[]): boolean {
    const all = names.length > 0 ? names : [...this.tracked.keys()];
    return all.every((name) => {
      const at =
        this.tracked.get(name)?.reader.position ??
        this.managers.find((runner) => runner.manager.name === name)?.position ??
        -1n;
      return at >= position;
    });
  }

  private wakeWaiters(): void {
    if (this.waiters.length === 0) return;
    this.waiters = this.waiters.filter((waiter) => {
      if (!this.reached(waiter.position, waiter.projections)) return true;
      clearTimeout(waiter.timer);
      waiter.resolve(true);
      return false;
    });
  }

  /** For /health: each projection's and process manager's position and lag behind the log's head. */
  health(head: bigint) {
    const lag = (position: bigint) => String(head > position ? head - position : 0n);
    const projections = [...this.tracked.values()].map(({ projection, reader, next }) => ({
      name: projection.name,
      version: projection.version,
      generation: reader.target.generation,
      status: reader.status,
      position: String(reader.position),
      lag: lag(reader.position),
      ...(reader.failure ? { failure: reader.failure } : {}),
      ...(reader.lastError ? { lastError: reader.lastError } : {}),
      ...(next
        ? {
            rebuilding: {
              generation: next.runner.target.generation,
              status: next.runner.status,
              position: String(next.runner.position),
              ...(next.runner.failure ? { failure: next.runner.failure } : {}),
            },
          }
        : {}),
    }));
    const processManagers = this.managers.map((runner) => ({
      name: runner.manager.name,
      status: runner.status,
      position: String(runner.position),
      lag: lag(runner.position),
      attempts: runner.attempts,
      // Held by this instance, in this term; absent on a standby.
      ...(runner.lease ? { leaseTerm: runner.lease.term } : {}),
      ...(runner.lastError ? { lastError: runner.lastError } : {}),
    }));
    const healthy =
      projections.every((p) => p.status !== 'failed' && p.status !== 'retrying') &&
      processManagers.every((p) => p.status !== 'retrying');
    return { healthy, projections, processManagers };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.watchTimer);
    for (const waiter of this.waiters) {
      clearTimeout(waiter.timer);
      waiter.resolve(false);
    }
    this.waiters = [];
    const runners = [...this.tracked.values()].flatMap((t) => [t.reader, t.next?.runner]);
    await Promise.all([
      ...runners.map((runner) => runner?.stop()),
      ...this.managers.map((runner) => runner.stop()),
    ]);
  }
}
