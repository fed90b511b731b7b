import { Module } from '@nestjs/common';
import { CqrsModule } from '@nestjs/cqrs';
import {
  DeactivateUserHandler,
  DecideCorporationHandler,
  DecideUserHandler,
} from './directory.commands';
import { DirectoryController } from './directory.controller';

/** The host's users and corporate clients, as the host syncs them (DESIGN §2.3). */
@Module({
  imports: [CqrsModule],
  controllers: [DirectoryController],
  providers: [DecideUserHandler, DeactivateUserHandler, DecideCorporationHandler],
})
export class DirectoryModule {}
