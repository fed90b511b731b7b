import { Module } from '@nestjs/common';
import { NotificationsModule } from '../notifications/notifications.module';
import { HealthController } from './health.controller';

/** What operators and load balancers ask the service about itself: /health. */
@Module({
  imports: [NotificationsModule],
  controllers: [HealthController],
})
export class OperationsModule {}
