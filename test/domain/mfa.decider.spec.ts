import { UserCommand, userDecider, UserEvent } from '../../src/directory/user.decider';
import { Eligibility, MfaEvent, WebAuthnCredential } from '../../src/enrollment/mfa';
import { deciderSpec } from '../support/decider-spec';

/** The factors half of the user stream: enrollment, confirmation, reset, recycling. */
const now = '2026-01-15T09:00:00.000Z';
const later = '2026-01-15T09:20:00.000Z';
const expiresAt = '2026-01-15T09:10:00.000Z';
const spec = deciderSpec(userDecider, { now });
const userId = 'ann';
const secret = { keyId: 'k0', iv: 'iv', ciphertext: 'ct', tag: 'tag' };
const credential: WebAuthnCredential = {
  credentialId: 'cred-1',
  publicKey: 'pk',
  counter: 0,
  transports: ['usb'],
  aaguid: '00000000-0000-0000-0000-000000000000',
  attestationFormat: 'none',
  backedUp: false,
};
const eligible: Eligibility = { mfaEnabled: true, holdsSeat: false, seatAvailable: true };

const registered: UserEvent = {
  type: 'UserRegistered',
  data: {
    userId,
    registeredAt: now,
    role: 'case-manager',
    corporationId: null,
    name: 'Ann',
    email: 'ann@firm.example',
    organization: null,
    billingContact: false,
    firmAdmin: false,
  },
};
const deactivated: UserEvent = {
  type: 'UserDeactivated',
  data: { userId, reason: 'deleted', deactivatedAt: now },
};

const startTotp = (
  enrollmentId = 'e1',
  eligibility: Eligibility = eligible,
  generation = 0,
): UserCommand => ({
  type: 'StartTotpEnrollment',
  userId,
  enrollmentId,
  label: 'Phone',
  generation,
  secret,
  expiresAt,
  eligibility,
});
const totpStarted = (enrollmentId = 'e1', generation = 0): MfaEvent => ({
  type: 'TotpEnrollmentStarted',
  data: {
    userId,
    enrollmentId,
    label: 'Phone',
    generation,
    secret,
    algorithm: 'SHA1',
    digits: 6,
    period: 30,
    expiresAt,
    startedAt: now,
  },
});
const webAuthnStarted = (enrollmentId = 'w1'): MfaEvent => ({
  type: 'WebAuthnRegistrationStarted',
  data: {
    userId,
    enrollmentId,
    label: 'Key',
    generation: 0,
    challenge: 'ch',
    expiresAt,
    startedAt: now,
  },
});
const confirm = (enrollmentId = 'e1', completing = false, generation = 0): UserCommand => ({
  type: 'ConfirmFactor',
  userId,
  enrollmentId,
  factorId: `f-${enrollmentId}`,
  generation,
  completing,
});
const confirmed = (enrollmentId = 'e1', factorType: 'totp' | 'webauthn' = 'totp'): MfaEvent => ({
  type: 'FactorConfirmed',
  data: {
    userId,
    factorId: `f-${enrollmentId}`,
    enrollmentId,
    factorType,
    label: factorType === 'totp' ? 'Phone' : 'Key',
    generation: 0,
    confirmedAt: now,
    ...(factorType === 'webauthn' ? { credential } : {}),
  },
});
const reset = (
  factorIds: string[],
  trigger: 'superuser' | 'deactivation' = 'superuser',
): MfaEvent => ({
  type: 'EnrollmentReset',
  data: {
    userId,
    reason: trigger === 'superuser' ? 'lost phone' : 'deleted',
    trigger,
    factorIds,
    generation: 1,
    resetAt: now,
  },
});

describe('MFA factors of a user', () => {
  describe('starting an enrollment', () => {
    it('records the sealed secret and the expiry', () => {
      spec.given([registered]).when(startTotp()).then([totpStarted()]);
    });

    it('is refused for an unknown user, an inactive one, one not MFA-enabled, and with no seat left', () => {
      spec.given([]).when(startTotp()).thenThrows('user-not-found', 'not-found');
      spec.given([registered, deactivated]).when(startTotp()).thenThrows('user-inactive');
      spec
        .given([registered])
        .when(startTotp('e1', { ...eligible, mfaEnabled: false }))
        .thenThrows('mfa-not-enabled');
      spec
        .given([registered])
        .when(startTotp('e1', { ...eligible, seatAvailable: false }))
        .thenThrows('license-exhausted', 'conflict');
    });

    it('a user who holds a seat, or already has a factor, may add one with no seat free', () => {
      const full = { ...eligible, seatAvailable: false };
      spec
        .given([registered])
        .when(startTotp('e1', { ...full, holdsSeat: true }))
        .then([totpStarted()]);
      spec
        .given([registered, totpStarted(), confirmed()])
        .when(startTotp('e2', full))
        .then([totpStarted('e2')]);
    });

    it('the same command again changes nothing', () => {
      spec.given([registered, totpStarted()]).when(startTotp()).then([]);
    });

    it('a start prepared before a reset is refused (its key and seat are gone)', () => {
      spec
        .given([registered, totpStarted(), confirmed(), reset(['f-e1'])])
        .when(startTotp('e2', eligible, 0))
        .thenThrows('concurrency-conflict');
    });
  });

  describe('confirming', () => {
    it('turns a pending enrollment into a factor', () => {
      spec.given([registered, totpStarted()]).when(confirm()).then([confirmed()]);
    });

    it('is idempotent, and refuses an unknown, reset or expired enrollment', () => {
      spec.given([registered, totpStarted(), confirmed()]).when(confirm()).then([]);
      spec.given([registered]).when(confirm()).thenThrows('enrollment-not-found', 'not-found');
      spec
        .given([registered, totpStarted(), reset([])])
        .when(confirm('e1', false, 1))
        .thenThrows('enrollment-not-found');
      spec
        .given([registered, totpStarted()])
        .when(confirm(), { now: later })
        .thenThrows('enrollment-expired');
    });

    it('the seat keeper finishes an interrupted confirmation even after the expiry', () => {
      spec
        .given([registered, totpStarted()])
        .when(confirm('e1', true), { now: later })
        .then([{ ...confirmed(), data: { ...confirmed().data, confirmedAt: later } } as MfaEvent]);
    });

    it('a security key is confirmed only once its registration was verified, and its challenge serves once', () => {
      spec
        .given([registered, webAuthnStarted()])
        .when(confirm('w1'))
        .thenThrows('registration-not-verified');
      const record: UserCommand = {
        type: 'RecordWebAuthnRegistration',
        userId,
        enrollmentId: 'w1',
        generation: 0,
        credential,
      };
      const verified: MfaEvent = {
        type: 'WebAuthnRegistrationVerified',
        data: { userId, enrollmentId: 'w1', generation: 0, credential, verifiedAt: now },
      };
      spec.given([registered, webAuthnStarted()]).when(record).then([verified]);
      spec
        .given([registered, webAuthnStarted(), verified])
        .when(record)
        .thenThrows('challenge-already-used');
      spec
        .given([registered, webAuthnStarted(), verified])
        .when(confirm('w1'))
        .then([confirmed('w1', 'webauthn')]);
      // The same key twice for one user is refused.
      spec
        .given([
          registered,
          webAuthnStarted(),
          verified,
          confirmed('w1', 'webauthn'),
          webAuthnStarted('w2'),
        ])
        .when({ ...record, enrollmentId: 'w2' })
        .thenThrows('credential-already-registered');
    });
  });

  describe('a verified security key that never got its seat', () => {
    it('expires like any unconfirmed enrollment (issue 11 §11); the keeper may still finish it', () => {
      const verified: MfaEvent = {
        type: 'WebAuthnRegistrationVerified',
        data: { userId, enrollmentId: 'w1', generation: 0, credential, verifiedAt: now },
      };
      spec
        .given([registered, webAuthnStarted(), verified])
        .when(confirm('w1'), { now: later })
        .thenThrows('enrollment-expired');
      // The seat keeper completes one whose seat was taken in time (a crash between the two).
      spec
        .given([registered, webAuthnStarted(), verified])
        .when(confirm('w1', true), { now: later })
        .then([
          {
            ...confirmed('w1', 'webauthn'),
            data: { ...confirmed('w1', 'webauthn').data, confirmedAt: later },
          } as MfaEvent,
        ]);
    });
  });

  describe('reset and recycling', () => {
    it('a reset removes every factor and pending enrollment at once and moves to the next generation', () => {
      spec
        .given([registered, totpStarted(), confirmed(), totpStarted('e2')])
        .when({ type: 'ResetEnrollment', userId, reason: 'lost phone', trigger: 'superuser' })
        .then([reset(['f-e1'])]);
      spec
        .given([registered])
        .when({ type: 'ResetEnrollment', userId, reason: 'x', trigger: 'superuser' })
        .then([]);
    });

    it('deactivating a user resets its enrollment in the same decision', () => {
      spec
        .given([registered, totpStarted(), confirmed()])
        .when({ type: 'DeactivateUser', userId, reason: 'deleted' })
        .then([deactivated, reset(['f-e1'], 'deactivation')]);
      spec
        .given([registered])
        .when({ type: 'DeactivateUser', userId, reason: 'deleted' })
        .then([deactivated]);
    });

    it('reactivation does not restore factors', () => {
      const history = [
        registered,
        totpStarted(),
        confirmed(),
        deactivated,
        reset(['f-e1'], 'deactivation'),
      ];
      spec
        .given(history)
        .when({ type: 'ReactivateUser', userId })
        .then([{ type: 'UserReactivated', data: { userId, reactivatedAt: now } }]);
      spec
        .given([...history, { type: 'UserReactivated', data: { userId, reactivatedAt: now } }])
        .when(confirm('e1', false, 1))
        .thenThrows('enrollment-not-found');
    });
  });
});
