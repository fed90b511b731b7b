import { Body, Controller, Delete, Get, HttpCode, Param, Put, Query } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiExtension,
  ApiOkResponse,
  ApiOperation,
  ApiProperty,
  ApiPropertyOptional,
  ApiTags,
} from '@nestjs/swagger';
import { IsBoolean, IsIn, ValidateIf } from 'class-validator';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import type { CommandEnvelope } from '../command-handling/command-handler';
import { Roles } from '../http/auth';
import { Envelope } from '../http/command-envelope';
import { validationProblem } from '../http/problem';
import { IdPipe, ReadQuery } from '../http/validation';
import { apiSchema, commandAnswer, ID, JsonSchema, objectSchema } from '../http/api-schemas';
import { DecideEnablement, EnablementView, GetEnablement } from './enablement.commands';
import type { CorporationMode, EnablementCommand } from './enablement.decider';

const ENABLEMENT_FIELDS: Record<string, JsonSchema> = {
  caseManagers: { type: 'boolean' },
  vendorCaseManagers: { type: 'boolean' },
  corporations: objectSchema({
    mode: { type: 'string', enum: ['all', 'specific'] },
    corpUsers: { type: 'boolean', description: "Mode `all`: every corporation's corp users." },
    foreignNationals: {
      type: 'boolean',
      description: "Mode `all`: every corporation's foreign nationals.",
    },
    specific: {
      type: 'array',
      description: 'Mode `specific`: the corporations listed, each with its two switches.',
      items: objectSchema({
        corporationId: ID,
        corpUsers: { type: 'boolean' },
        foreignNationals: { type: 'boolean' },
      }),
    },
  }),
};
const ENABLEMENT_EXAMPLE = {
  caseManagers: true,
  vendorCaseManagers: false,
  corporations: {
    mode: 'specific',
    corpUsers: false,
    foreignNationals: false,
    specific: [{ corporationId: 'corp-1', corpUsers: true, foreignNationals: false }],
  },
};
const ENABLEMENT = apiSchema(
  'Enablement',
  objectSchema(ENABLEMENT_FIELDS, { example: ENABLEMENT_EXAMPLE }),
);
const ENABLEMENT_ANSWER = apiSchema(
  'EnablementAnswer',
  commandAnswer(ENABLEMENT_FIELDS, {
    description: 'The whole enablement configuration after the command.',
    example: { position: '7', ...ENABLEMENT_EXAMPLE },
  }),
);
const answers = ApiOkResponse({
  description: 'The whole enablement configuration after the command.',
  schema: ENABLEMENT_ANSWER,
});

export class SwitchBody {
  @ApiProperty({ example: true })
  @IsBoolean()
  enabled!: boolean;
}

export class CorporationModeBody {
  @ApiProperty({ enum: ['all', 'specific'], example: 'all' })
  @IsIn(['all', 'specific'])
  mode!: CorporationMode;

  @ApiPropertyOptional({
    description: "Mode `all` only: every corporation's corp users.",
    example: true,
  })
  @ValidateIf((body: CorporationModeBody) => body.corpUsers !== undefined)
  @IsBoolean()
  corpUsers?: boolean;

  @ApiPropertyOptional({
    description: "Mode `all` only: every corporation's foreign nationals.",
    example: false,
  })
  @ValidateIf((body: CorporationModeBody) => body.foreignNationals !== undefined)
  @IsBoolean()
  foreignNationals?: boolean;
}

export class SpecificCorporationBody {
  @ApiProperty({ example: true })
  @IsBoolean()
  corpUsers!: boolean;

  @ApiProperty({ example: false })
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
  @ApiOperation({
    summary: 'Switch MFA for case managers',
    description: '409 subscription-not-active unless the subscription is active.',
  })
  @answers
  caseManagers(
    @Param('firmId', IdPipe) firmId: string,
    @Body() body: SwitchBody,
    @Envelope() envelope: CommandEnvelope,
  ) {
    return this.run(firmId, { type: 'SetCaseManagersEnablement', enabled: body.enabled }, envelope);
  }

  @Put('vendor-case-managers')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Switch MFA for vendor case managers',
    description: '409 subscription-not-active unless the subscription is active.',
  })
  @answers
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
  @ApiOperation({
    summary: 'MFA for corp users and foreign nationals of all corporations, or of listed ones',
    description:
      'Mode `all` with its two switches, or mode `specific` (then list corporations one by one; the switches are refused with 400). ' +
      '409 subscription-not-active unless the subscription is active.',
  })
  @answers
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
  @ApiOperation({
    summary: 'List a corporation, with its two switches (mode specific)',
    description:
      '409 corporation-mode-not-specific unless the mode is `specific`; ' +
      '409 subscription-not-active unless the subscription is active.',
  })
  @answers
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
  @ApiOperation({
    summary: 'Remove a corporation from the list (mode specific)',
    description:
      '404 corporation-not-listed for a corporation not in the list; ' +
      '409 subscription-not-active unless the subscription is active.',
  })
  @answers
  @ApiExtension('x-not-found', ['`corporation-not-listed`: the corporation is not in the list'])
  removeCorporation(
    @Param('firmId', IdPipe) firmId: string,
    @Param('corporationId', IdPipe) corporationId: string,
    @Envelope() envelope: CommandEnvelope,
  ) {
    return this.run(firmId, { type: 'RemoveSpecificCorporation', corporationId }, envelope);
  }

  @Get()
  @ApiOperation({
    summary: 'The whole enablement configuration',
  })
  @ApiOkResponse({
    description: 'The whole configuration, from its own stream.',
    schema: ENABLEMENT,
  })
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
