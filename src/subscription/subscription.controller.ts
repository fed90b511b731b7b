import { Body, Controller, Get, HttpCode, Param, Post, Put, Query } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiOkResponse,
  ApiOperation,
  ApiProperty,
  ApiPropertyOptional,
  ApiTags,
} from '@nestjs/swagger';
import { IsBoolean, IsInt, IsOptional, IsString, Matches, Max, Min } from 'class-validator';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import type { CommandEnvelope } from '../command-handling/command-handler';
import { Roles } from '../http/auth';
import { Envelope } from '../http/command-envelope';
import { EmptyBody, IdPipe, ReadQuery } from '../http/validation';
import { apiSchema, commandAnswer, JsonSchema, nullable, objectSchema } from '../http/api-schemas';
import { DecideSubscription, GetSubscription, SubscriptionView } from './subscription.commands';
import type { SubscriptionCommand } from './subscription.decider';

const PLAN = /^[A-Za-z0-9][A-Za-z0-9 ._:-]{0,63}$/;
const PLAN_MESSAGE = 'must be 1-64 characters of letters, digits, space . _ : -';
const PLAN_DESCRIPTION =
  'The plan, as the operators name it: 1–64 letters, digits, spaces, `. _ : -`.';
export const MAX_LICENSES = 1_000_000;

const SUBSCRIPTION_FIELDS: Record<string, JsonSchema> = {
  status: { type: 'string', enum: ['none', 'requested', 'active', 'cancelled'] },
  plan: nullable({ type: 'string', description: 'Null while no plan was named.' }),
  licenseCount: { type: 'integer', minimum: 0, description: 'Seats the firm bought.' },
};
const SUBSCRIPTION = apiSchema(
  'Subscription',
  objectSchema(SUBSCRIPTION_FIELDS, {
    example: { status: 'active', plan: 'standard', licenseCount: 50 },
  }),
);
const SUBSCRIPTION_ANSWER = apiSchema(
  'SubscriptionAnswer',
  commandAnswer(SUBSCRIPTION_FIELDS, {
    description: 'The subscription after the command.',
    example: { position: '2', status: 'active', plan: 'standard', licenseCount: 50 },
  }),
);
const answers = ApiOkResponse({
  description: 'The subscription after the command.',
  schema: SUBSCRIPTION_ANSWER,
});

export class RequestSubscriptionBody {
  @ApiPropertyOptional({ pattern: PLAN.source, description: PLAN_DESCRIPTION, example: 'standard' })
  @IsOptional()
  @IsString()
  @Matches(PLAN, { message: PLAN_MESSAGE })
  plan?: string;
}

export class ActivateSubscriptionBody {
  @ApiProperty({ type: 'integer', minimum: 1, maximum: MAX_LICENSES, example: 50 })
  @IsInt()
  @Min(1)
  @Max(MAX_LICENSES)
  licenseCount!: number;

  @ApiProperty({ pattern: PLAN.source, description: PLAN_DESCRIPTION, example: 'standard' })
  @IsString()
  @Matches(PLAN, { message: PLAN_MESSAGE })
  plan!: string;
}

export class ChangeLicensesBody {
  @ApiProperty({ type: 'integer', minimum: 1, maximum: MAX_LICENSES, example: 80 })
  @IsInt()
  @Min(1)
  @Max(MAX_LICENSES)
  licenseCount!: number;

  @ApiPropertyOptional({
    description: 'Lower the count below the seats in use anyway.',
    example: false,
  })
  @IsOptional()
  @IsBoolean()
  force?: boolean;
}

@ApiTags('Subscription and licenses')
@ApiBearerAuth()
@Controller('v1/firms/:firmId/mfa')
export class SubscriptionController {
  constructor(
    private readonly commandBus: CommandBus,
    private readonly queryBus: QueryBus,
  ) {}

  @Post('subscription/request')
  @HttpCode(200)
  @Roles('superuser')
  @ApiOperation({
    summary: 'Request the MFA subscription',
    description:
      'The firm admin asks for MFA, optionally naming a plan. 409 subscription-already-active.',
  })
  @answers
  request(
    @Param('firmId', IdPipe) firmId: string,
    @Body() body: RequestSubscriptionBody,
    @Envelope() envelope: CommandEnvelope,
  ) {
    return this.run(firmId, { type: 'RequestSubscription', plan: body.plan ?? null }, envelope);
  }

  @Post('subscription/activate')
  @HttpCode(200)
  @Roles('operator')
  @ApiOperation({
    summary: 'Activate the subscription with its license count',
    description:
      'MFA becomes available with `licenseCount` seats. 409 subscription-not-requested, 409 subscription-already-active.',
  })
  @answers
  activate(
    @Param('firmId', IdPipe) firmId: string,
    @Body() body: ActivateSubscriptionBody,
    @Envelope() envelope: CommandEnvelope,
  ) {
    return this.run(
      firmId,
      { type: 'ActivateSubscription', plan: body.plan, licenseCount: body.licenseCount },
      envelope,
    );
  }

  @Put('licenses')
  @HttpCode(200)
  @Roles('operator')
  @ApiOperation({
    summary: 'Change the license count',
    description:
      '409 license-below-usage when the count is below the seats in use and `force` is not set; 409 subscription-not-active.',
  })
  @answers
  changeLicenses(
    @Param('firmId', IdPipe) firmId: string,
    @Body() body: ChangeLicensesBody,
    @Envelope() envelope: CommandEnvelope,
  ) {
    return this.run(
      firmId,
      { type: 'ChangeLicenseCount', licenseCount: body.licenseCount, force: body.force ?? false },
      envelope,
    );
  }

  @Post('subscription/cancel')
  @HttpCode(200)
  @Roles('operator')
  @ApiOperation({
    summary: 'Cancel the subscription',
    description: 'MFA is off for the firm and enrollments go dormant. 409 subscription-not-active.',
  })
  @answers
  cancel(
    @Param('firmId', IdPipe) firmId: string,
    @Body() _body: EmptyBody,
    @Envelope() envelope: CommandEnvelope,
  ) {
    return this.run(firmId, { type: 'CancelSubscription' }, envelope);
  }

  /** Read from the subscription's own stream, so it is always current. */
  @Get('subscription')
  @Roles('superuser', 'operator')
  @ApiOperation({
    summary: 'The subscription: status, plan and license count',
    description: 'A firm never seen has status `none`.',
  })
  @ApiOkResponse({ description: 'The subscription, from its own stream.', schema: SUBSCRIPTION })
  get(
    @Param('firmId', IdPipe) firmId: string,
    @Query() _query: ReadQuery,
  ): Promise<SubscriptionView> {
    return this.queryBus.execute(new GetSubscription(firmId));
  }

  private run(firmId: string, command: SubscriptionCommand, envelope: CommandEnvelope) {
    return this.commandBus.execute(new DecideSubscription(firmId, command, envelope));
  }
}
