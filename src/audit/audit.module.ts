import { Module } from '@nestjs/common';
import { AnchorWriter } from './anchor-writer';

/**
 * The auditable history (ADR 0017): every event is hash-chained to its
 * stream's predecessor by the event store (src/event-store/chaining-event-store.ts),
 * and the anchor writer records each firm's stream heads in its audit stream.
 * The chains are checked by the pure fold in chain-verification.ts.
 */
@Module({
  providers: [AnchorWriter],
})
export class AuditModule {}
