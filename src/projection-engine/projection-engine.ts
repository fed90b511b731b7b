import { Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import type { Projection, ReadModelReader } from './projection';
import type { EventStore } from '../event-store/event-store.port';
import type {
  FindQuery,
  QuarantinedEvent,
  ReadModelDocument,
  ReadModelSchema,
  ReadModelStore,
  ReadModelTarget,
  RecordedSkip,
} from '../read-model/read-model-store.port';
import type { LeaseSettings } from './process-lease';
import { defaultLeaseSettings, ProcessManager, ProcessManagerRunner } from './process-manager';
import { EngineLogger, ProjectionRunner } from './projection-runner';
import { reasonOf } from './quarantine';

export interface ProjectionEngineOptions {
  /** The projections to run (the service's: ALL_PROJECTIONS of projections/index.ts). */
  projections: readonly Projection[];
  processManagers?: readonly ProcessManager[];
  logger?: EngineLogger;
  /** How often other processes' rebuilds, skips and replay requests are looked for. */
  watchIntervalMs?: number;
  /** Process managers' leases: TTL and renewal interval, and this instance's owner id (generated when omitted). */
  leases?: Partial<LeaseSettings>;
}

/** Quarantined events and skips listed per consumer in /health; the CLI lists them all. */
const HEALTH_DETAILS = 50;
/** The quarantine is read again at least this often, besides after every change seen here. */
const ISSUES_REFRESH_MS = 30_000;

interface Tracked {
  projection: Projection;
  schema: ReadModelSchema;
  /** Writes the generation readers use. */
  reader: ProjectionRunner;
  /** Builds a newer generation; takes over once it has caught up with `reader`. */
  next?: { runner: ProjectionRunner; activateOnSwap: boolean };
}

/** What operators must know about the consumers, as last read from the store. */
interface Issues {
  quarantined: readonly QuarantinedEvent[];
  skips: readonly RecordedSkip[];
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
 *
 * A bad event stops no consumer (DESIGN §6): each one quarantines what it
 * cannot read or apply and goes on. The engine shows the quarantined events
 * and the operators' skips in `health()`, passes new skips on to the process
 * managers (one stuck on an event lets it go) and runs the replays operators
 * ask of process managers.
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
  private issues: Issues = { quarantined: [], skips: [] };
  private issuesRead: Promise<void> = Promise.resolve();
  private issuesReadAt = 0;
  private skipsSeen = '';
  /** Replay requests being carried out here: `name#position`. */
  private readonly replaying = new Set<string>();
  /** One owner id for all of this instance's leases. */
  private readonly leases: LeaseSettings;

  constructor(
    private readonly eventStore: EventStore,
    private readonly store: ReadModelStore,
    options: ProjectionEngineOptions,
  ) {
    this.logger = options.logger ?? new Logger('Projections');
    this.projections = options.projections;
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
    // Quarantined events, skips and replays are kept per consumer name.
    const names = new Set(this.projections.map((projection) => projection.name));
    for (const manager of this.processManagers) {
      if (names.has(manager.name)) throw new Error(`Two consumers are named ${manager.name}`);
      names.add(manager.name);
    }
    await this.readIssues();
    const active = await this.store.activeGenerations();
    const checkpoints = await this.store.listCheckpoints();
    for (const projection of this.projections) {
      const schema = schemaOf(projection);
      let generation = active.get(projection.name);
      if (generation === undefined) {
        const created = await this.store.createGeneration(projection.name, projection.version);
        await this.store.prepare(schema, created);
        // Another instance starting on the same empty store may have activated its own first.
        generation = await this.store.activateFirst({
          projection: projection.name,
          generation: created,
        });
        if (generation !== created) {
          await this.store.dropGeneration(schema, created);
          await this.store.prepare(schema, generation);
        }
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
        { onQuarantined: () => this.readIssues(), leases: this.leases },
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
      onQuarantined: () => this.readIssues(),
    });
  }

  /**
   * Reads the quarantined events and the skips again. Serialised, so that a
   * later read always lands after an earlier one; a failure is logged and
   * leaves the last read in place.
   */
  private readIssues(): Promise<void> {
    const read = this.issuesRead.then(async () => {
      const [quarantined, skips] = await Promise.all([
        this.store.quarantined(),
        this.store.skips(),
      ]);
      this.issues = { quarantined, skips };
      this.issuesReadAt = Date.now();
      this.skipsSeen = skipsSignature(skips);
    });
    this.issuesRead = read.catch((error: unknown) =>
      this.logger.warn(`Reading quarantined events failed: ${reasonOf(error)}`),
    );
    return this.issuesRead;
  }

  /**
   * Notices what operators and other processes did: a skip recorded (a
   * process manager stuck on that event lets it go), a replay asked of a
   * process manager, a rebuilt generation activated.
   */
  private async watch(): Promise<void> {
    if (this.watching || this.stopped) return;
    this.watching = true;
    try {
      // Skips are few and read every time; the quarantine only when something may have changed it.
      const skips = await this.store.skips();
      if (
        skipsSignature(skips) !== this.skipsSeen ||
        Date.now() - this.issuesReadAt > ISSUES_REFRESH_MS
      ) {
        await this.readIssues();
      }
      for (const runner of this.managers) {
        runner.noticeSkips(positionsOf(skips, runner.manager.name));
      }
      await this.startReplays();
      const active = await this.store.activeGenerations();
      for (const tracked of this.tracked.values()) {
        const generation = active.get(tracked.projection.name);
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
          // The rebuild wrote the new generation's quarantine.
          await this.readIssues();
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

  /** Hands each replay asked of a process manager here to its runner (it waits for the batch in progress). */
  private async startReplays(): Promise<void> {
    for (const request of await this.store.replayRequests()) {
      const runner = this.managers.find((m) => m.manager.name === request.name);
      const key = `${request.name}#${request.position}`;
      // Only the instance holding the manager's lease replays: a standby leaves the request.
      if (!runner?.lease || this.replaying.has(key)) continue;
      this.replaying.add(key);
      void runner
        .replay(request.position)
        .then(async (outcome) => {
          if (outcome === 'not-holder') return;
          if (outcome === 'missing') {
            this.logger.warn(
              `Replay of position ${request.position} for ${request.name}: no event there`,
            );
          }
          await this.store.clearReplayRequest(request.name, request.position);
        })
        .catch((error: unknown) =>
          this.logger.warn(
            `Replay of position ${request.position} for ${request.name} failed: ${reasonOf(error)}; trying again`,
          ),
        )
        .finally(() => this.replaying.delete(key));
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
    await this.readIssues();
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

  /**
   * For /health: each projection's and process manager's position and lag
   * behind the log's head, and what operators must know. `quarantined` and
   * `skipped` are counts (for a projection, of the generation it serves);
   * `quarantinedEvents` and `skippedEvents` list the first HEALTH_DETAILS of
   * them (position, type, reason; no stream id, which names a firm and a user).
   * Not healthy while a consumer is retrying or holds quarantined events.
   */
  health(head: bigint) {
    const lag = (position: bigint) => String(head > position ? head - position : 0n);
    const projections = [...this.tracked.values()].map(({ projection, reader, next }) => ({
      name: projection.name,
      version: projection.version,
      generation: reader.target.generation,
      status: reader.status,
      position: String(reader.position),
      lag: lag(reader.position),
      ...this.issuesOf(projection.name, reader.target.generation),
      ...(reader.lastError ? { lastError: reader.lastError } : {}),
      ...(next
        ? {
            rebuilding: {
              generation: next.runner.target.generation,
              status: next.runner.status,
              position: String(next.runner.position),
              quarantined: this.quarantinedOf(projection.name, next.runner.target.generation)
                .length,
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
      ...this.issuesOf(runner.manager.name, 0),
      // Held by this instance, in this term; absent on a standby.
      ...(runner.lease ? { leaseTerm: runner.lease.term } : {}),
      ...(runner.lastError ? { lastError: runner.lastError } : {}),
    }));
    const healthy = [...projections, ...processManagers].every(
      (consumer) => consumer.status !== 'retrying' && consumer.quarantined === 0,
    );
    return { healthy, projections, processManagers };
  }

  private quarantinedOf(consumer: string, generation: number): QuarantinedEvent[] {
    // Skips recorded since the quarantine was last read are already left out.
    const skipped = positionsOf(this.issues.skips, consumer);
    return this.issues.quarantined.filter(
      (q) => q.consumer === consumer && q.generation === generation && !skipped.has(q.position),
    );
  }

  private issuesOf(consumer: string, generation: number) {
    const quarantined = this.quarantinedOf(consumer, generation);
    const skips = this.issues.skips.filter((skip) => skip.consumer === consumer);
    return {
      quarantined: quarantined.length,
      skipped: skips.length,
      quarantinedEvents: quarantined.slice(0, HEALTH_DETAILS).map((q) => ({
        position: String(q.position),
        eventType: q.eventType,
        reason: q.reason,
        at: q.at,
      })),
      skippedEvents: skips.slice(0, HEALTH_DETAILS).map((skip) => ({
        position: String(skip.position),
        note: skip.note,
        recordedAt: skip.recordedAt,
      })),
    };
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

function positionsOf(skips: readonly RecordedSkip[], consumer: string): Set<bigint> {
  return new Set(skips.filter((skip) => skip.consumer === consumer).map((skip) => skip.position));
}

function skipsSignature(skips: readonly RecordedSkip[]): string {
  return skips.map((skip) => `${skip.consumer}#${skip.position}`).join(',');
}
