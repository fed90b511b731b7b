import { Body, Controller, HttpCode, Param, Post, Put } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiExtension,
  ApiOkResponse,
  ApiOperation,
  ApiProperty,
  ApiPropertyOptional,
  ApiTags,
} from '@nestjs/swagger';
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
import { apiSchema, commandAnswer, ID, nullable } from '../http/api-schemas';
import { DeactivateUser, DecideCorporation, DecideUser } from './directory.commands';
import { DEACTIVATION_REASONS, DeactivationReason, USER_ROLES, UserRole } from './user.decider';

const USER_ANSWER = apiSchema(
  'UserAnswer',
  commandAnswer(
    {
      userId: ID,
      status: { type: 'string', enum: ['active', 'inactive'] },
      role: { type: 'string', enum: [...USER_ROLES] },
      corporationId: nullable({
        ...ID,
        description: 'For corp-user and foreign-national; null for the other roles.',
      }),
      name: { type: 'string' },
      email: { type: 'string' },
      organization: nullable({ type: 'string' }),
      billingContact: { type: 'boolean' },
      firmAdmin: { type: 'boolean' },
      deactivationReason: {
        type: 'string',
        enum: [...DEACTIVATION_REASONS],
        description: 'While inactive: why.',
      },
      enrolled: { type: 'boolean', description: 'The user holds at least one confirmed factor.' },
    },
    {
      optional: ['deactivationReason'],
      description: 'The user as the directory holds it after the command.',
      example: {
        position: '8',
        userId: 'u-1',
        status: 'active',
        role: 'corp-user',
        corporationId: 'corp-1',
        name: 'Ada Lovelace',
        email: 'ada@corp.example',
        organization: 'Analytical Engines Ltd',
        billingContact: false,
        firmAdmin: false,
        enrolled: false,
      },
    },
  ),
);
const userAnswer = ApiOkResponse({
  description: 'The user after the command.',
  schema: USER_ANSWER,
});

export class UserBody {
  @ApiProperty({ enum: USER_ROLES, example: 'corp-user' })
  @IsIn(USER_ROLES)
  role!: UserRole;

  @ApiPropertyOptional({
    type: String,
    nullable: true,
    pattern: ID_PATTERN.source,
    maxLength: 128,
    description: 'Required for corp-user and foreign-national, refused otherwise.',
    example: 'corp-1',
  })
  @ValidateIf((body: UserBody) => body.corporationId !== undefined && body.corporationId !== null)
  @IsString()
  @Matches(ID_PATTERN, { message: ID_MESSAGE })
  corporationId?: string | null;

  @ApiProperty({ maxLength: 200, example: 'Ada Lovelace' })
  @IsString()
  @MaxLength(200)
  @Matches(TEXT, { message: 'must be non-blank text without control characters' })
  name!: string;

  @ApiProperty({ maxLength: 254, example: 'ada@corp.example' })
  @IsString()
  @MaxLength(254)
  @IsEmail({}, { message: 'must be an email address' })
  email!: string;

  @ApiPropertyOptional({
    type: String,
    nullable: true,
    maxLength: 200,
    example: 'Analytical Engines Ltd',
  })
  @ValidateIf((body: UserBody) => body.organization !== undefined && body.organization !== null)
  @IsString()
  @MaxLength(200)
  @Matches(TEXT, { message: 'must be non-blank text without control characters' })
  organization?: string | null;

  @ApiPropertyOptional({
    description: 'A case manager who receives license-usage emails.',
    example: false,
  })
  @IsOptional()
  @IsBoolean()
  billingContact?: boolean;

  @ApiPropertyOptional({
    description: 'A firm admin (superuser); receives license-usage emails.',
    example: false,
  })
  @IsOptional()
  @IsBoolean()
  firmAdmin?: boolean;
}

export class DeactivateBody {
  @ApiProperty({ enum: DEACTIVATION_REASONS, example: 'account-disabled' })
  @IsIn(DEACTIVATION_REASONS)
  reason!: DeactivationReason;
}

export class CorporationBody {
  @ApiProperty({ maxLength: 200, example: 'Corp One' })
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
  @ApiOperation({
    summary: 'Register or update a user',
    description:
      '`corporationId` is required for corp-user and foreign-national (400 corporation-required) and refused for the other roles (400 corporation-not-allowed). A corporation never registered shows by its id until the host registers its name.',
  })
  @userAnswer
  // An unknown user is registered here, never a 404 (openapi.ts).
  @ApiExtension('x-unknown-user', 'registers')
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
  @ApiOperation({
    summary: 'Deactivate a user',
    description:
      "Resets the user's enrollment (every factor stops working) and frees the seat (DESIGN: recycling).",
  })
  @userAnswer
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
  @ApiOperation({
    summary: 'Reactivate a user',
  })
  @userAnswer
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
  @ApiOperation({
    summary: 'Register or rename a corporation',
    description: 'The name the admin picker shows.',
  })
  @ApiOkResponse({
    description: 'The corporation as registered.',
    schema: apiSchema(
      'CorporationAnswer',
      commandAnswer(
        { corporationId: ID, name: { type: 'string' } },
        { example: { position: '11', corporationId: 'corp-1', name: 'Corp One' } },
      ),
    ),
  })
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
