import { Controller, Get, Inject } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { EVENT_STORE, EventStore } from '../event-store/event-store.port';
import { Mailer } from '../notifications/mailer';
import { ProjectionEngine } from '../projection-engine/projection-engine';
import { Public } from './auth';
import { problem, ProblemException } from './problem';

@ApiTags('Operations')
@Controller('health')
export class HealthController {
  private readonly startedAt = Date.now();

  constructor(
    @Inject(EVENT_STORE) private readonly store: EventStore,
    private readonly engine: ProjectionEngine,
    private readonly mailer: Mailer,
  ) {}

  /**
   * Liveness and readiness: the log is reachable. Each projection and process
   * manager shows its position and lag behind the head; `mail` shows the
   * emails waiting to be sent and the last failure. `status` is `degraded`
   * while a consumer is stopped or retrying, or an email is being retried.
   */
  @Get()
  @Public()
  async health() {
    let headPosition: bigint;
    try {
      headPosition = await this.store.headPosition();
    } catch {
      throw new ProblemException(
        problem(503, 'event-store-unavailable', 'The event store does not answer.'),
        { 'retry-after': '5' },
      );
    }
    const consumers = this.engine.health(headPosition);
    // The failed emails' details name recipients and addresses: they belong to the
    // operator-only part of /health, not to this public answer (API.md). The count stays.
    const { failedEmails: _operatorsOnly, ...mail } = await this.mailer.health();
    return {
      status: consumers.healthy && mail.retrying === 0 ? 'ok' : 'degraded',
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      eventStore: { headPosition: String(headPosition) },
      projections: consumers.projections,
      processManagers: consumers.processManagers,
      mail,
    };
  }
}
