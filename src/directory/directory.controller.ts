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
import { CommandEnvelope, CommandHandler } from '../command-handling/command-handler';
import { Roles } from '../http/auth';
import { Envelope } from '../http/command-envelope';
import { ID_MESSAGE, IdPipe, TEXT } from '../http/validation';
import { ID_PATTERN, streams } from '../shared/ids';
import { EmptyBody } from '../subscription/subscription.controller';
import { EnrollmentService } from '../enrollment/enrollment.service';
import { corporationDecider } from './corporation.decider';
import {
  DEACTIVATION_REASONS,
  DeactivationReason,
  USER_ROLES,
  UserCommand,
  userDecider,
  UserRole,
  UserState,
} from './user.decider';

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

function userView(userId: string, state: UserState) {
  if (state.status === 'unregistered') return { userId, status: state.status };
  return {
    userId,
    status: state.status,
    ...state.profile,
    enrolled: state.mfa.factors.size > 0,
  };
}

@ApiTags('Directory')
@ApiBearerAuth()
@Roles('host')
@Controller('v1/firms/:firmId')
export class DirectoryController {
  constructor(
    private readonly commands: CommandHandler,
    private readonly enrollment: EnrollmentService,
  ) {}

  @Put('users/:userId')
  @HttpCode(200)
  registerOrUpdate(
    @Param('firmId', IdPipe) firmId: string,
    @Param('userId', IdPipe) userId: string,
    @Body() body: UserBody,
    @Envelope() envelope: CommandEnvelope,
  ) {
    return this.runUser(
      firmId,
      userId,
      {
        type: 'RegisterOrUpdateUser',
        userId,
        profile: {
          role: body.role,
          corporationId: body.corporationId ?? null,
          name: body.name.trim(),
          email: body.email.trim(),
          organization: body.organization?.trim() ?? null,
          billingContact: body.billingContact ?? false,
          firmAdmin: body.firmAdmin ?? false,
        },
      },
      envelope,
    );
  }

  @Post('users/:userId/deactivate')
  @HttpCode(200)
  async deactivate(
    @Param('firmId', IdPipe) firmId: string,
    @Param('userId', IdPipe) userId: string,
    @Body() body: DeactivateBody,
    @Envelope() envelope: CommandEnvelope,
  ) {
    // Recycling: the user's enrollment is reset and its seat freed in the same append.
    const outcome = await this.enrollment.deactivate(firmId, userId, body.reason, envelope);
    return { position: String(outcome.position), ...userView(userId, outcome.state) };
  }

  @Post('users/:userId/reactivate')
  @HttpCode(200)
  reactivate(
    @Param('firmId', IdPipe) firmId: string,
    @Param('userId', IdPipe) userId: string,
    @Body() _body: EmptyBody,
    @Envelope() envelope: CommandEnvelope,
  ) {
    return this.runUser(firmId, userId, { type: 'ReactivateUser', userId }, envelope);
  }

  @Put('corporations/:corporationId')
  @HttpCode(200)
  async registerCorporation(
    @Param('firmId', IdPipe) firmId: string,
    @Param('corporationId', IdPipe) corporationId: string,
    @Body() body: CorporationBody,
    @Envelope() envelope: CommandEnvelope,
  ) {
    const outcome = await this.commands.handle(
      streams.corporation(firmId, corporationId),
      corporationDecider,
      { type: 'RegisterOrRenameCorporation', corporationId, name: body.name.trim() },
      envelope,
    );
    return { position: String(outcome.position), corporationId, name: body.name.trim() };
  }

  private async runUser(
    firmId: string,
    userId: string,
    command: UserCommand,
    envelope: CommandEnvelope,
  ) {
    const outcome = await this.commands.handle(
      streams.user(firmId, userId),
      userDecider,
      command,
      envelope,
    );
    return { position: String(outcome.position), ...userView(userId, outcome.state) };
  }
}
