import { Controller, Get, Inject } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { EVENT_STORE, EventStore } from '../event-store/event-store.port';
import { Public } from './auth';
import { problem, ProblemException } from './problem';

@ApiTags('Operations')
@Controller('health')
export class HealthController {
  private readonly startedAt = Date.now();

  constructor(@Inject(EVENT_STORE) private readonly store: EventStore) {}

  /** Liveness and readiness: the log is reachable. Projections join with the read-model issue. */
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
    return {
      status: 'ok',
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      eventStore: { headPosition: String(headPosition) },
      projections: [],
    };
  }
}
