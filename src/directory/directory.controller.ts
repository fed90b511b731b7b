import { Body, Controller, HttpCode, Param, Post, Put } from '@nestjs/common';
import { ApiBearerAuth, ApiProperty, ApiPropertyOptional, ApiTags } from '@nestjs/swagger';
import {
  IsBoolean,
  IsEmail,
  IsIn,
  IsOptional,
  IsString,
  Matches,
  MaxLength,
  ValidateIf,
} from 'class-validator';
import { CommandBus } from '@nestjs/cqrs';
import type { CommandEnvelope } from '../command-handling/command-handler';
import { Roles } from '../http/auth';
import { Envelope } from '../http/command-envelope';
import { EmptyBody, ID_MESSAGE, IdPipe, TEXT } from '../http/validation';
import { ID_PATTERN } from '../shared/ids';
import { DeactivateUser, DecideCorporation, DecideUser } from './directory.commands';
import { DEACTIVATION_REASONS, DeactivationReason, USER_ROLES, UserRole } from './user.decider';

export class UserBody {
  @ApiProperty({ enum: USER_ROLES })
  @IsIn(USER_ROLES)
  role!: UserRole;

  @ApiPropertyOptional({
    description: 'Required for corp-user and foreign-national, refused otherwise.',
  })
  @ValidateIf((body: UserBody) => body.corporationId !== undefined && body.corporationId !== null)
  @IsString()
  @Matches(ID_PATTERN, { message: ID_MESSAGE })
  corporationId?: string | null;

  @ApiProperty({ maxLength: 200 })
  @IsString()
  @MaxLength(200)
  @Matches(TEXT, { message: 'must be non-blank text without control characters' })
  name!: string;

  @ApiProperty({ maxLength: 254 })
  @IsString()
  @MaxLength(254)
  @IsEmail({}, { message: 'must be an email address' })
  email!: string;

  @ApiPropertyOptional({ maxLength: 200 })
  @ValidateIf((body: UserBody) => body.organization !== undefined && body.organization !== null)
  @IsString()
  @MaxLength(200)
  @Matches(TEXT, { message: 'must be non-blank text without control characters' })
  organization?: string | null;

  @ApiPropertyOptional({ description: 'A case manager who receives license-usage emails.' })
  @IsOptional()
  @IsBoolean()
  billingContact?: boolean;

  @ApiPropertyOptional({ description: 'A firm admin (superuser); receives license-usage emails.' })
  @IsOptional()
  @IsBoolean()
  firmAdmin?: boolean;
}

export class DeactivateBody {
  @ApiProperty({ enum: DEACTIVATION_REASONS })
  @IsIn(DEACTIVATION_REASONS)
  reason!: DeactivationReason;
}

export class CorporationBody {
  @ApiProperty({ maxLength: 200 })
  @IsString()
  @MaxLength(200)
  @Matches(TEXT, { message: 'must be non-blank text without control characters' })
  name!: string;
}

@ApiTags('Directory')
@ApiBearerAuth()
@Roles('host')
@Controller('v1/firms/:firmId')
export class DirectoryController {
  constructor(private readonly commandBus: CommandBus) {}

  @Put('users/:userId')
  @HttpCode(200)
  registerOrUpdate(
    @Param('firmId', IdPipe) firmId: string,
    @Param('userId', IdPipe) userId: string,
    @Body() body: UserBody,
    @Envelope() envelope: CommandEnvelope,
  ) {
    const profile = {
      role: body.role,
      corporationId: body.corporationId ?? null,
      name: body.name.trim(),
      email: body.email.trim(),
      organization: body.organization?.trim() ?? null,
      billingContact: body.billingContact ?? false,
      firmAdmin: body.firmAdmin ?? false,
    };
    return this.commandBus.execute(
      new DecideUser(firmId, userId, { type: 'RegisterOrUpdateUser', userId, profile }, envelope),
    );
  }

  @Post('users/:userId/deactivate')
  @HttpCode(200)
  deactivate(
    @Param('firmId', IdPipe) firmId: string,
    @Param('userId', IdPipe) userId: string,
    @Body() body: DeactivateBody,
    @Envelope() envelope: CommandEnvelope,
  ) {
    return this.commandBus.execute(new DeactivateUser(firmId, userId, body.reason, envelope));
  }

  @Post('users/:userId/reactivate')
  @HttpCode(200)
  reactivate(
    @Param('firmId', IdPipe) firmId: string,
    @Param('userId', IdPipe) userId: string,
    @Body() _body: EmptyBody,
    @Envelope() envelope: CommandEnvelope,
  ) {
    return this.commandBus.execute(
      new DecideUser(firmId, userId, { type: 'ReactivateUser', userId }, envelope),
    );
  }

  @Put('corporations/:corporationId')
  @HttpCode(200)
  registerCorporation(
    @Param('firmId', IdPipe) firmId: string,
    @Param('corporationId', IdPipe) corporationId: string,
    @Body() body: CorporationBody,
    @Envelope() envelope: CommandEnvelope,
  ) {
    return this.commandBus.execute(
      new DecideCorporation(firmId, corporationId, body.name.trim(), envelope),
    );
  }
}
