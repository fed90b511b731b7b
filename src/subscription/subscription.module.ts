import { Module } from '@nestjs/common';
import { CqrsModule } from '@nestjs/cqrs';
import { DecideSubscriptionHandler, GetSubscriptionHandler } from './subscription.commands';
import { SubscriptionController } from './subscription.controller';

/** The firm's MFA subscription and its licenses (DESIGN §2.1, §3). */
@Module({
  imports: [CqrsModule],
  controllers: [SubscriptionController],
  providers: [DecideSubscriptionHandler, GetSubscriptionHandler],
})
export class SubscriptionModule {}
