import { Controller, Get, Inject, Logger, Param, Query, Res } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiOkResponse,
  ApiOperation,
  ApiProduces,
  ApiPropertyOptional,
  ApiProperty,
  ApiTags,
} from '@nestjs/swagger';
import { IsOptional, IsString, MaxLength } from 'class-validator';
import type { FastifyReply } from 'fastify';
import { Readable } from 'node:stream';
import { EVENT_STORE, EventStore } from '../event-store/event-store.port';
import { Roles } from '../http/auth';
import { validationProblem } from '../http/problem';
import { IdPipe } from '../http/validation';
import { READ_MODEL_STORE, ReadModelStore } from '../read-model/read-model-store.port';
import { CLOCK, Clock } from '../shared/clock';
import { parseExportFilters } from './audit-query';
import { INSTANT_MESSAGE, parseInstant } from '../shared/instant';
import { ChainVerification, verifyFirmChains } from './chain-verification';
import { firmEvents } from './firm-events';
import { exportFirm } from './firm-export';
import { FirmStateAsOf, stateAsOf } from './state-as-of';
import { StateSnapshots } from './state-snapshots';
import { apiSchema, COUNT, ISO_TIME, objectSchema, POSITION } from '../http/api-schemas';
import { ENROLLED_USER, LICENSE_USAGE, ROLE_COUNTERS } from '../dashboards/dashboards.controller';

/** One line of the export: an event, an event the store cannot read, or the trailer. */
const EXPORT_LINE = apiSchema('AuditExportLine', {
  description:
    'The schema of each line of the NDJSON answer: an event, a corrupt event, or (last) the trailer.',
  oneOf: [
    objectSchema(
      {
        position: POSITION,
        streamId: { type: 'string', example: 'user-firm-1/u-1' },
        revision: { ...POSITION, description: 'The revision in its stream (decimal string).' },
        type: { type: 'string', example: 'FactorConfirmed' },
        data: { type: 'object', description: 'Key material replaced by `{ redacted }`.' },
        metadata: {
          type: 'object',
          description: 'eventId, firmId, actor, correlationId, causationId, occurredAt, hash, …',
        },
      },
      { description: 'An event.' },
    ),
    objectSchema(
      {
        position: POSITION,
        streamId: { type: 'string' },
        revision: POSITION,
        type: { type: 'string' },
        corrupt: { type: 'string', description: 'Why the store cannot read it.' },
      },
      { description: 'An event the store cannot read.' },
    ),
    objectSchema(
      {
        trailer: objectSchema(
          {
            firmId: { type: 'string' },
            filters: { type: 'object' },
            exportedAt: ISO_TIME,
            asOfPosition: POSITION,
            events: COUNT,
            corrupt: COUNT,
            firstPosition: { ...POSITION, nullable: true },
            lastPosition: { ...POSITION, nullable: true },
            digest: { type: 'string', description: 'SHA-256 (hex) over the lines before it.' },
            heads: {
              type: 'array',
              items: objectSchema({
                streamId: { type: 'string' },
                revision: POSITION,
                hash: { type: 'string' },
              }),
            },
          },
          { optional: ['firstPosition', 'lastPosition'] },
        ),
      },
      { description: 'The last line.' },
    ),
  ],
  example: {
    position: '1',
    streamId: 'subscription-firm-1',
    revision: '0',
    type: 'SubscriptionRequested',
    data: { plan: 'standard', requestedAt: '2026-03-01T08:00:00.000Z' },
    metadata: {
      eventId: '86cea818-f2b0-55d1-8bba-5ffecf7aca23',
      firmId: 'firm-1',
      actor: { id: 'admin-1', role: 'superuser' },
      occurredAt: '2026-03-01T08:00:00.000Z',
    },
  },
});

/** `?from=&to=&type=&userId=` of the export; checked further by parseExportFilters. */
export class ExportQuery {
  @ApiPropertyOptional({
    description:
      'Events that occurred at or after this time (inclusive): ISO 8601 with its offset, or a date (midnight UTC).',
    example: '2026-01-01T00:00:00Z',
  })
  @IsOptional()
  @IsString()
  @MaxLength(64)
  from?: string;

  @ApiPropertyOptional({
    description: 'Events that occurred before this time (exclusive).',
    example: '2026-02-01T00:00:00Z',
  })
  @IsOptional()
  @IsString()
  @MaxLength(64)
  to?: string;

  @ApiPropertyOptional({
    description: 'One event type of the catalog, or several separated by commas.',
    example: 'FactorConfirmed,EnrollmentReset',
  })
  @IsOptional()
  @IsString()
  @MaxLength(4096)
  type?: string;

  @ApiPropertyOptional({ description: 'Events whose `data.userId` is this user.' })
  @IsOptional()
  @IsString()
  @MaxLength(128)
  userId?: string;
}

export class StateQuery {
  @ApiProperty({
    description:
      'The moment: ISO 8601 with its offset, or a date (midnight UTC); not in the future.',
    example: '2026-01-15T12:00:00Z',
  })
  @IsString()
  @MaxLength(64)
  asOf!: string;
}

/**
 * The auditors' endpoints (API.md "Audit", docs/audit.md): a firm's history
 * as a verifiable NDJSON export, and its dashboards as they stood at any
 * moment. Role `auditor` only; a token naming a firm reaches only that firm
 * (AuthGuard).
 */
@ApiTags('Audit')
@ApiBearerAuth()
@Controller('v1/audit/firms/:firmId')
export class AuditController {
  private readonly logger = new Logger('AuditExport');
  /** Folds of the firms asked about, to resume from (state-snapshots.ts). */
  private readonly snapshots = new StateSnapshots();

  constructor(
    @Inject(EVENT_STORE) private readonly eventStore: EventStore,
    @Inject(READ_MODEL_STORE) private readonly readModels: ReadModelStore,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  @Get('events')
  @Roles('auditor')
  @ApiProduces('application/x-ndjson')
  @ApiOperation({
    summary: "The firm's events in log order, as NDJSON, ending with a trailer",
    description:
      'One JSON object a line: `{ position, streamId, revision, type, data, metadata }` (position ' +
      'and revision decimal strings; key material replaced by `{ redacted: "sha256:…" }`), or ' +
      '`{ position, streamId, revision, type, corrupt }` for an event the store cannot read. The ' +
      'last line is `{ "trailer": { firmId, filters, exportedAt, asOfPosition, events, corrupt, ' +
      'firstPosition, lastPosition, digest, heads } }`: `npm run audit -- verify --file` checks a ' +
      'saved export against it, offline. Streamed: a bad filter is a 400 before any line; a ' +
      'failure while streaming ends the answer without its trailer.',
  })
  @ApiOkResponse({
    description: 'One JSON object a line, the trailer last.',
    content: { 'application/x-ndjson': { schema: EXPORT_LINE } },
  })
  async events(
    @Param('firmId', IdPipe) firmId: string,
    @Query() query: ExportQuery,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const parsed = parseExportFilters(query);
    if ('errors' in parsed) throw validationProblem(parsed.errors);
    // One chunk (a page of lines) ready at a time: the socket's own buffers do the rest.
    const lines = Readable.from(
      exportFirm(this.eventStore, firmId, {
        filters: parsed.filters,
        exportedAt: this.clock.now().toISOString(),
      }),
      { highWaterMark: 1 },
    );
    // Headers are gone by then: the answer ends without its trailer, and the log says why.
    lines.on('error', (error: unknown) =>
      this.logger.error(
        `Export of firm ${firmId} stopped: ${error instanceof Error ? error.message : String(error)}`,
      ),
    );
    await reply
      .header('content-type', 'application/x-ndjson; charset=utf-8')
      .header('cache-control', 'no-store')
      .send(lines);
  }

  @Get('verify')
  @Roles('auditor')
  @ApiOperation({
    summary: "Checks the firm's history against its hash chains and anchors",
    description:
      '`{ ok, eventsChecked, firstBrokenPosition?, reason?, unchainedBefore? }`: every event of ' +
      "the firm is hashed again and checked against its stream's chain and the firm's anchors " +
      '(ADR 0017, docs/audit.md). `reason` starts with a stable code; events written before ' +
      'chains existed are reported as `unchainedBefore`, never as broken. Reading stops at the ' +
      'first break.',
  })
  @ApiOkResponse({
    description: 'The outcome of the check.',
    schema: apiSchema(
      'ChainVerification',
      objectSchema(
        {
          ok: { type: 'boolean' },
          eventsChecked: COUNT,
          firstBrokenPosition: POSITION,
          reason: { type: 'string', description: '`code: words`; the code is stable.' },
          unchainedBefore: {
            ...POSITION,
            description: 'Events before this position predate the chains and were not checked.',
          },
        },
        {
          optional: ['firstBrokenPosition', 'reason', 'unchainedBefore'],
          example: { ok: true, eventsChecked: 18 },
        },
      ),
    ),
  })
  verify(@Param('firmId', IdPipe) firmId: string): Promise<ChainVerification> {
    return verifyFirmChains(firmEvents(this.eventStore, firmId), firmId);
  }

  @Get('state')
  @Roles('auditor')
  @ApiOperation({
    summary: "The firm's dashboards as they stood at a moment, rebuilt from the log",
    description:
      '`{ asOf, position, usage, counters, enrolledUsers }`: `usage` and `counters` as the ' +
      'dashboards answered then, `enrolledUsers` every item the enrolled-users list held then. ' +
      "The firm's events up to the first that occurred after `asOf` are folded through the live " +
      "read models' own projections and read with their own queries; `position` is the last " +
      'event folded.',
  })
  @ApiOkResponse({
    description: "The firm's dashboards as they stood at `asOf`.",
    schema: apiSchema(
      'FirmStateAsOf',
      objectSchema(
        {
          asOf: ISO_TIME,
          position: { ...POSITION, description: 'The last event folded.' },
          usage: LICENSE_USAGE,
          counters: ROLE_COUNTERS,
          enrolledUsers: { type: 'array', items: ENROLLED_USER },
        },
        {
          example: {
            asOf: '2026-03-02T12:00:00.000Z',
            position: '14',
            usage: {
              status: 'active',
              licenseCount: 50,
              seatsInUse: 1,
              unutilized: 49,
              usagePercent: 2,
            },
            counters: {
              enabled: {
                caseManagers: 1,
                vendorCaseManagers: 0,
                corpUsers: 0,
                foreignNationals: 0,
              },
              enrolled: {
                caseManagers: 1,
                vendorCaseManagers: 0,
                corpUsers: 0,
                foreignNationals: 0,
              },
            },
            enrolledUsers: [],
          },
        },
      ),
    ),
  })
  async state(
    @Param('firmId', IdPipe) firmId: string,
    @Query() query: StateQuery,
  ): Promise<FirmStateAsOf> {
    const asOf = parseInstant(query.asOf);
    if (asOf === undefined) {
      throw validationProblem([
        {
          field: 'asOf',
          message: INSTANT_MESSAGE,
        },
      ]);
    }
    if (asOf > this.clock.now().getTime()) {
      throw validationProblem([{ field: 'asOf', message: 'must not be in the future' }]);
    }
    const skips = new Map<string, Set<bigint>>();
    for (const skip of await this.readModels.skips()) {
      const positions = skips.get(skip.consumer) ?? new Set<bigint>();
      positions.add(skip.position);
      skips.set(skip.consumer, positions);
    }
    return stateAsOf(this.eventStore, firmId, asOf, { skips, snapshots: this.snapshots });
  }
}
