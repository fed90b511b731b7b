import { assertNever, Decider, DecisionContext, eventTypesOf } from '../shared/decider';

/* A corporate client of the firm, registered by the host so the admin's picker can show names. */

export type CorporationCommand = {
  type: 'RegisterOrRenameCorporation';
  corporationId: string;
  name: string;
};

export type CorporationEvent =
  | {
      type: 'CorporationRegistered';
      data: { corporationId: string; name: string; registeredAt: string };
    }
  | {
      type: 'CorporationRenamed';
      data: { corporationId: string; name: string; previousName: string; renamedAt: string };
    };

export type CorporationState = { registered: false } | { registered: true; name: string };

export const corporationDecider: Decider<
  CorporationCommand,
  CorporationEvent,
  CorporationState,
  DecisionContext
> = {
  eventTypes: eventTypesOf<CorporationEvent['type']>({
    CorporationRegistered: true,
    CorporationRenamed: true,
  }),

  initialState: () => ({ registered: false }),

  decide(command, state, { now }) {
    switch (command.type) {
      case 'RegisterOrRenameCorporation':
        if (!state.registered) {
          return [
            {
              type: 'CorporationRegistered',
              data: { corporationId: command.corporationId, name: command.name, registeredAt: now },
            },
          ];
        }
        if (state.name === command.name) return [];
        return [
          {
            type: 'CorporationRenamed',
            data: {
              corporationId: command.corporationId,
              name: command.name,
              previousName: state.name,
              renamedAt: now,
            },
          },
        ];
      default:
        return assertNever(command.type);
    }
  },

  evolve(_state, event) {
    switch (event.type) {
      case 'CorporationRegistered':
      case 'CorporationRenamed':
        return { registered: true, name: event.data.name };
      default:
        return assertNever(event);
    }
  },
};
