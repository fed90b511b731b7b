import { Module } from '@nestjs/common';
import { CqrsModule } from '@nestjs/cqrs';
import { AppConfig, APP_CONFIG } from '../config/config';
import { openMailTransport } from './mail-transport';
import { MAIL_TRANSPORT, Mailer } from './mailer';
import { NotificationPolicy } from './notification-policy';
import { ListFailedEmailsHandler, RetryEmailHandler } from './notifications.commands';
import { NotificationsController } from './notifications.controller';

/**
 * License-usage emails and enrollment invitations (DESIGN §5): the policy
 * decides and queues, the mailer sends and records; both are process managers
 * on the log. Operators list and retry the emails refused for good.
 */
@Module({
  imports: [CqrsModule],
  controllers: [NotificationsController],
  providers: [
    {
      provide: MAIL_TRANSPORT,
      useFactory: (config: AppConfig) => openMailTransport(config.smtpUrl, config.dataDir),
      inject: [APP_CONFIG],
    },
    NotificationPolicy,
    Mailer,
    ListFailedEmailsHandler,
    RetryEmailHandler,
  ],
  exports: [Mailer],
})
export class NotificationsModule {}
