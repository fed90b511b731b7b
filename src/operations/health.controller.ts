import { Controller, Get, Inject, Req } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import { EVENT_STORE, EventStore } from '../event-store/event-store.port';
import { Mailer } from '../notifications/mailer';
import { ProjectionEngine } from '../projection-engine/projection-engine';
import { Principal, Public } from '../http/auth';
import { problem, ProblemException } from '../http/problem';
import { seatRepairFailures } from '../../projections/seat-repairs.projection';
import { apiSchema, COUNT, objectSchema, POSITION } from '../http/api-schemas';

const CONSUMER = objectSchema(
  {
    name: { type: 'string' },
    status: { type: 'string', description: 'e.g. `live`, `catching-up`, `retrying`.' },
    position: POSITION,
    lag: { ...POSITION, description: 'Events behind the head of the log (decimal string).' },
    quarantined: COUNT,
    skipped: COUNT,
  },
  { optional: ['quarantined', 'skipped'] },
);
const CONSUMER_EXAMPLE = {
  name: 'license-usage',
  status: 'live',
  position: '42',
  lag: '0',
  quarantined: 0,
  skipped: 0,
};

/** The public answer of GET /health (PublicHealth); an operator's adds details. */
const HEALTH_SCHEMA = apiSchema(
  'Health',
  objectSchema(
    {
      status: { type: 'string', enum: ['ok', 'degraded'] },
      uptimeSeconds: COUNT,
      eventStore: objectSchema({ headPosition: POSITION }),
      projections: { type: 'array', items: CONSUMER },
      processManagers: { type: 'array', items: CONSUMER },
      mail: objectSchema(
        { pending: COUNT, retrying: COUNT, failed: COUNT },
        { optional: ['failed'] },
      ),
      seatRepairs: objectSchema({ failed: COUNT }),
    },
    {
      description:
        'What anyone sees. With an operator token without a `firm` claim, the same fields and ' +
        'more (quarantined and skipped events, last errors, the mail queue, seat repair failures).',
      example: {
        status: 'ok',
        uptimeSeconds: 3600,
        eventStore: { headPosition: '42' },
        projections: [CONSUMER_EXAMPLE],
        processManagers: [{ ...CONSUMER_EXAMPLE, name: 'seat-keeper' }],
        mail: { pending: 0, retrying: 0, failed: 0 },
        seatRepairs: { failed: 0 },
      },
    },
  ),
);

/** Seat repair failures listed in the details (the count stops there too). */
const MAX_LISTED = 100;

/** One projection or process manager as anyone may see it. */
interface PublicConsumer {
  name: string;
  status: string;
  position: string;
  lag: string;
  /** Events this consumer set aside as corrupt, when the engine reports them. */
  quarantined?: number;
  /** Events an operator told this consumer to pass over. */
  skipped?: number;
}

/** What /health says without an operator token: no firm, user, address or error text. */
export interface PublicHealth {
  status: 'ok' | 'degraded';
  uptimeSeconds: number;
  eventStore: { headPosition: string };
  projections: PublicConsumer[];
  processManagers: PublicConsumer[];
  mail: { pending: number; retrying: number; failed?: number };
  /** Users with a confirmed factor and no seat the seat keeper could give (S2 broken for them). */
  seatRepairs: { failed: number };
}

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
   * manager shows its position and lag behind the head, and `quarantined` /
   * `skipped` counts with, apart, the events (`quarantinedEvents`,
   * `skippedEvents`: position, type, reason); `mail` counts the emails
   * waiting. `status` is `degraded` while a consumer is retrying or holds
   * quarantined events, an email is being retried, or a seat repair failed.
   * An operator token without a firm claim adds the details (events, last
   * errors, the mail queue, seat repair failures), which name firms, users and
   * addresses.
   */
  @Get()
  @Public()
  @ApiOperation({
    summary: 'Liveness, readiness and projection lag',
    description:
      'No token needed: status, uptime, the head of the log, each projection and process manager ' +
      '(name, status, position, lag) and counts, nothing that names a firm, a user or an ' +
      'address. With an `operator` token (without a `firm` claim): the details as well — ' +
      'failed events, last errors, the mail queue. A token that is sent must be valid (401).',
  })
  @ApiOkResponse({
    description: 'The service is up; `status` says how well.',
    schema: HEALTH_SCHEMA,
  })
  async health(@Req() request: FastifyRequest & { principal?: Principal }) {
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
    const mail = await this.mailer.health();
    const failures = await seatRepairFailures(this.engine.reader('seat-repairs'), MAX_LISTED);
    const detailed = {
      status:
        consumers.healthy && mail.retrying === 0 && failures.length === 0
          ? ('ok' as const)
          : ('degraded' as const),
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      eventStore: { headPosition: String(headPosition) },
      projections: consumers.projections,
      processManagers: consumers.processManagers,
      mail,
      seatRepairs: { failed: failures.length, failures },
    };
    // Another firm's failures are tenant data too: a firm-bound operator sees what anyone sees.
    const { principal } = request;
    if (principal?.role === 'operator' && principal.firm === null) return detailed;
    return publicView(detailed);
  }
}

/**
 * The public answer, built field by field from the detailed one: whatever the
 * engine or the mailer report next (error messages, quarantined events,
 * failed emails) stays out unless it is added here, and then only as a count.
 */
function publicView(detailed: {
  status: PublicHealth['status'];
  uptimeSeconds: number;
  eventStore: { headPosition: string };
  projections: ReadonlyArray<ConsumerDetails>;
  processManagers: ReadonlyArray<ConsumerDetails>;
  mail: { pending: number; retrying: number };
  seatRepairs: { failed: number };
}): PublicHealth {
  const failed = countOf((detailed.mail as Record<string, unknown>).failed);
  return {
    status: detailed.status,
    uptimeSeconds: detailed.uptimeSeconds,
    eventStore: { headPosition: detailed.eventStore.headPosition },
    projections: detailed.projections.map(publicConsumer),
    processManagers: detailed.processManagers.map(publicConsumer),
    mail: {
      pending: detailed.mail.pending,
      retrying: detailed.mail.retrying,
      ...(failed === undefined ? {} : { failed }),
    },
    seatRepairs: { failed: detailed.seatRepairs.failed },
  };
}

type ConsumerDetails = { name: string; status: string; position: string; lag: string };

function publicConsumer(consumer: ConsumerDetails): PublicConsumer {
  const quarantined = countOf((consumer as Record<string, unknown>).quarantined);
  const skipped = countOf((consumer as Record<string, unknown>).skipped);
  return {
    name: consumer.name,
    status: consumer.status,
    position: consumer.position,
    lag: consumer.lag,
    ...(quarantined === undefined ? {} : { quarantined }),
    ...(skipped === undefined ? {} : { skipped }),
  };
}

/** A count, from a number or from a list (whose entries never leave this function). */
function countOf(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (Array.isArray(value)) return value.length;
  return undefined;
}
