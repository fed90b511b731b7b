import { Module } from '@nestjs/common';
import { CqrsModule } from '@nestjs/cqrs';
import { DecideEnablementHandler, GetEnablementHandler } from './enablement.commands';
import { EnablementController } from './enablement.controller';

/** Who the firm's admin switches MFA on for (DESIGN §2.2). */
@Module({
  imports: [CqrsModule],
  controllers: [EnablementController],
  providers: [DecideEnablementHandler, GetEnablementHandler],
})
export class EnablementModule {}
