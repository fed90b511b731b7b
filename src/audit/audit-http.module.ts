import { Module } from '@nestjs/common';
import { AuditController } from './audit.controller';

/**
 * The auditors' HTTP endpoints (API.md "Audit"): the export and the state as
 * of a moment. The stores and the clock come from the global infrastructure.
 */
@Module({ controllers: [AuditController] })
export class AuditHttpModule {}
