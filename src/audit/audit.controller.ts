import { Controller, Get, Inject, Logger, Param, Query, Res } from '@nestjs/common';
import {
  ApiBearerAuth,
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
