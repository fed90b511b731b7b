import { Body, Controller, Get, HttpCode, Param, Post, Put, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiProperty, ApiPropertyOptional, ApiTags } from '@nestjs/swagger';
import { IsBoolean, IsInt, IsOptional, IsString, Matches, Max, Min } from 'class-validator';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import type { CommandEnvelope } from '../command-handling/command-handler';
import { Roles } from '../http/auth';
import { Envelope } from '../http/command-envelope';
import { EmptyBody, IdPipe, ReadQuery } from '../http/validation';
import { DecideSubscription, GetSubscription, SubscriptionView } from './subscription.commands';
import type { SubscriptionCommand } from './subscription.decider';

const PLAN = /^[A-Za-z0-9][A-Za-z0-9 ._:-]{0,63}$/;
const PLAN_MESSAGE = 'must be 1-64 characters of letters, digits, space . _ : -';
export const MAX_LICENSES = 1_000_000;

export class RequestSubscriptionBody {
  @ApiPropertyOptional({ example: 'standard' })
  @IsOptional()
  @IsString()
  @Matches(PLAN, { message: PLAN_MESSAGE })
  plan?: string;
}

export class ActivateSubscriptionBody {
  @ApiProperty({ minimum: 1, maximum: MAX_LICENSES, example: 50 })
  @IsInt()
  @Min(1)
  @Max(MAX_LICENSES)
  licenseCount!: number;

  @ApiProperty({ example: 'standard' })
  @IsString()
  @Matches(PLAN, { message: PLAN_MESSAGE })
  plan!: string;
}

export class ChangeLicensesBody {
  @ApiProperty({ minimum: 1, maximum: MAX_LICENSES, example: 80 })
  @IsInt()
  @Min(1)
  @Max(MAX_LICENSES)
  licenseCount!: number;

  @ApiPropertyOptional({ description: 'Lower the count below the seats in use anyway.' })
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
