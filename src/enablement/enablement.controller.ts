import { Body, Controller, Delete, Get, HttpCode, Param, Put, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiProperty, ApiPropertyOptional, ApiTags } from '@nestjs/swagger';
import { IsBoolean, IsIn, ValidateIf } from 'class-validator';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import type { CommandEnvelope } from '../command-handling/command-handler';
import { Roles } from '../http/auth';
import { Envelope } from '../http/command-envelope';
import { validationProblem } from '../http/problem';
import { IdPipe, ReadQuery } from '../http/validation';
import { DecideEnablement, EnablementView, GetEnablement } from './enablement.commands';
import type { CorporationMode, EnablementCommand } from './enablement.decider';

export class SwitchBody {
  @ApiProperty()
  @IsBoolean()
  enabled!: boolean;
}

export class CorporationModeBody {
  @ApiProperty({ enum: ['all', 'specific'] })
  @IsIn(['all', 'specific'])
  mode!: CorporationMode;

  @ApiPropertyOptional({ description: "Mode `all` only: every corporation's corp users." })
  @ValidateIf((body: CorporationModeBody) => body.corpUsers !== undefined)
  @IsBoolean()
  corpUsers?: boolean;

  @ApiPropertyOptional({ description: "Mode `all` only: every corporation's foreign nationals." })
  @ValidateIf((body: CorporationModeBody) => body.foreignNationals !== undefined)
  @IsBoolean()
  foreignNationals?: boolean;
}

export class SpecificCorporationBody {
  @ApiProperty()
  @IsBoolean()
  corpUsers!: boolean;

  @ApiProperty()
  @IsBoolean()
  foreignNationals!: boolean;
}

@ApiTags('Enablement')
@ApiBearerAuth()
@Roles('superuser')
@Controller('v1/firms/:firmId/mfa/enablement')
export class EnablementController {
  constructor(
    private readonly commandBus: CommandBus,
    private readonly queryBus: QueryBus,
  ) {}

  @Put('case-managers')
  @HttpCode(200)
  caseManagers(
    @Param('firmId', IdPipe) firmId: string,
    @Body() body: SwitchBody,
    @Envelope() envelope: CommandEnvelope,
  ) {
    return this.run(firmId, { type: 'SetCaseManagersEnablement', enabled: body.enabled }, envelope);
  }

  @Put('vendor-case-managers')
  @HttpCode(200)
  vendorCaseManagers(
    @Param('firmId', IdPipe) firmId: string,
    @Body() body: SwitchBody,
    @Envelope() envelope: CommandEnvelope,
  ) {
    return this.run(
      firmId,
      { type: 'SetVendorCaseManagersEnablement', enabled: body.enabled },
      envelope,
    );
  }

  @Put('corporations')
  @HttpCode(200)
  corporations(
    @Param('firmId', IdPipe) firmId: string,
    @Body() body: CorporationModeBody,
    @Envelope() envelope: CommandEnvelope,
  ) {
    if (body.mode === 'specific') {
      // The switches mean "every corporation"; sent with mode specific they would be silently ignored.
      const misplaced = (['corpUsers', 'foreignNationals'] as const).filter(
        (f) => body[f] !== undefined,
      );
      if (misplaced.length > 0) {
        throw validationProblem(
          misplaced.map((field) => ({ field, message: 'applies to mode "all" only' })),
        );
      }
    }
    return this.run(
      firmId,
      {
        type: 'SetCorporationMode',
        mode: body.mode,
        corpUsers: body.corpUsers,
        foreignNationals: body.foreignNationals,
      },
      envelope,
    );
  }

  @Put('corporations/:corporationId')
  @HttpCode(200)
  setCorporation(
    @Param('firmId', IdPipe) firmId: string,
    @Param('corporationId', IdPipe) corporationId: string,
    @Body() body: SpecificCorporationBody,
    @Envelope() envelope: CommandEnvelope,
  ) {
    return this.run(firmId, { type: 'SetSpecificCorporation', corporationId, ...body }, envelope);
  }

  @Delete('corporations/:corporationId')
  @HttpCode(200)
  removeCorporation(
    @Param('firmId', IdPipe) firmId: string,
    @Param('corporationId', IdPipe) corporationId: string,
    @Envelope() envelope: CommandEnvelope,
  ) {
    return this.run(firmId, { type: 'RemoveSpecificCorporation', corporationId }, envelope);
  }

  @Get()
  get(
    @Param('firmId', IdPipe) firmId: string,
    @Query() _query: ReadQuery,
  ): Promise<EnablementView> {
    return this.queryBus.execute(new GetEnablement(firmId));
  }

  private run(firmId: string, command: EnablementCommand, envelope: CommandEnvelope) {
    return this.commandBus.execute(new DecideEnablement(firmId, command, envelope));
  }
}
