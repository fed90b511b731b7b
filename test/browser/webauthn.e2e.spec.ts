import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { isoCBOR } from '@simplewebauthn/server/helpers';
import type { Browser } from 'playwright-core';
import type { RecordedEvent } from '../../src/event-store/event-store.port';
import {
  base64url,
  launchChromium,
  PageServer,
  SecurityKeyTab,
  startPageServer,
} from '../support/browser';
import { ApiResponse, forgetStoredAnswers, RunningService, startService } from '../support/harness';
import {
  activeFirm,
  expectOk,
  host,
  mfaPath,
  operator,
  registerUser,
  superuserOf,
} from '../support/mfa';

/*
 * Issue 3 §2 and API.md Enrollment/Login, end to end: Debian's Chromium with a
 * CDP virtual authenticator registers and uses security keys through the
 * service's real endpoints. The test plays the host application: it asks the
 * service for options, hands them to the page, and posts the browser's JSON
 * back to the service. One browser and one tab for the file; every test gets
 * a blank security key.
 */
describe('Security keys in a real browser', () => {
  let pages: PageServer;
  let browser: Browser;
  let service: RunningService;
  let tab: SecurityKeyTab;
  let firmCounter = 0;
  const newFirm = () => `webauthn-firm-${++firmCounter}`;

  beforeAll(async () => {
    // The page's port fixes the origin the service expects: the page server comes first.
    pages = await startPageServer();
    [browser, service] = await Promise.all([
      launchChromium(),
      startService({ env: { WEBAUTHN_RP_ID: 'localhost', WEBAUTHN_ORIGIN: pages.origin() } }),
    ]);
    tab = await SecurityKeyTab.open(browser, pages.url());
  });

  beforeEach(async () => {
    await tab.show(pages.url());
    await tab.plugInNewKey();
  });

  afterAll(async () => {
    await Promise.all([browser?.close(), service?.stop(), pages?.close()]);
  });

  const api = () => service.api;

  async function firmWithUsers(licenseCount: number, ...userIds: string[]): Promise<string> {
    const firmId = newFirm();
    await activeFirm(api(), firmId, licenseCount);
    for (const userId of userIds) await registerUser(api(), firmId, userId);
    return firmId;
  }

  const registrationOptions = (firmId: string, userId: string, label?: string) =>
    api().post<PublicKeyCredentialCreationOptionsJSON & { enrollmentId: string }>(
      `${mfaPath(firmId, userId)}/webauthn/registration/options`,
      host,
      label === undefined ? {} : { label },
    );
  const registrationVerify = (firmId: string, userId: string, response: RegistrationResponseJSON) =>
    api().post(`${mfaPath(firmId, userId)}/webauthn/registration/verify`, host, response);
  const authenticationOptions = (firmId: string, userId: string) =>
    api().post<PublicKeyCredentialRequestOptionsJSON>(
      `${mfaPath(firmId, userId)}/webauthn/authentication/options`,
      host,
      {},
    );
  const authenticationVerify = (
    firmId: string,
    userId: string,
    response: AuthenticationResponseJSON,
  ) => api().post(`${mfaPath(firmId, userId)}/webauthn/authentication/verify`, host, response);
  const requirement = async (firmId: string, userId: string) =>
    (await api().get(`${mfaPath(firmId, userId)}/login-requirement`, host)).body;
  const factors = async (firmId: string, userId: string) => {
    const res = await api().get(`${mfaPath(firmId, userId)}/factors`, host);
    expectOk(res);
    return res.body as Array<{ factorId: string; type: string; lastUsedAt: string | null }>;
  };

  /** Options, the browser's ceremony, verification: the key becomes the user's factor. */
  async function enrollKey(firmId: string, userId: string) {
    const options = await registrationOptions(firmId, userId);
    expectOk(options);
    const response = await tab.register(options.body);
    const verified = await registrationVerify(firmId, userId, response);
    expectOk(verified);
    return { credentialId: response.id, factorId: verified.body.factorId as string, response };
  }

  /** Fresh options and the browser's assertion for them, not posted yet. */
  async function assertion(firmId: string, userId: string) {
    const options = await authenticationOptions(firmId, userId);
    expectOk(options);
    return tab.authenticate(options.body);
  }

  const firmEvents = async (firmId: string) =>
    (await service.events()).filter((event) => event.metadata.firmId === firmId);
  const ofType = (events: RecordedEvent[], type: string, userId?: string) =>
    events.filter(
      (event) => event.type === type && (userId === undefined || event.data.userId === userId),
    );
  const subscriptionEvents = async (firmId: string) =>
    (await service.events()).filter((event) => event.streamId === `subscription-${firmId}`);
  const problemType = (res: ApiResponse) => String(res.body?.type ?? '').replace(/^.*\//, '');

  it('registers a key: a webauthn factor, decision verify, a seat, and no private key in the log', async () => {
    const firmId = await firmWithUsers(5, 'ann');
    expect(await requirement(firmId, 'ann')).toMatchObject({ decision: 'enroll' });

    const options = await registrationOptions(firmId, 'ann', 'Blue key');
    expect(options.status).toBe(200);
    expect(options.body).toMatchObject({
      rp: { id: 'localhost' },
      attestation: 'none',
      excludeCredentials: [],
      authenticatorSelection: { userVerification: 'preferred' },
    });
    expect(options.body.pubKeyCredParams.map((param) => param.alg)).toEqual([-7, -257]);

    const response = await tab.register(options.body);
    const verified = await registrationVerify(firmId, 'ann', response);
    expect(verified.status).toBe(200);
    expect(verified.body).toEqual({ factorId: expect.any(String), position: expect.any(String) });
    const { factorId } = verified.body;

    expect(await factors(firmId, 'ann')).toEqual([
      {
        factorId,
        type: 'webauthn',
        label: 'Blue key',
        createdAt: expect.any(String),
        lastUsedAt: null,
      },
    ]);
    expect(await requirement(firmId, 'ann')).toEqual({ decision: 'verify', methods: ['webauthn'] });

    // In the log, not only in the service's memory: the seat first, then the factor (DESIGN §3).
    const events = await firmEvents(firmId);
    const seats = ofType(events, 'SeatAssigned', 'ann');
    const confirmed = ofType(events, 'FactorConfirmed', 'ann');
    expect(seats).toHaveLength(1);
    expect(confirmed).toHaveLength(1);
    expect(seats[0].position).toBeLessThan(confirmed[0].position);
    expect(confirmed[0].data).toMatchObject({
      factorId,
      factorType: 'webauthn',
      credential: { credentialId: response.id },
    });

    // The authenticator's private key never left it: no encoding of it anywhere in the log.
    const [credential] = await tab.credentials();
    expect(base64url(credential.credentialId)).toBe(response.id);
    const privateKey = Buffer.from(credential.privateKey, 'base64');
    const log = JSON.stringify(events, (_key, value: unknown) =>
      typeof value === 'bigint' ? String(value) : value,
    );
    for (const encoding of ['base64', 'base64url', 'hex'] as const) {
      expect(log).not.toContain(privateKey.toString(encoding));
    }
  });

  it('logs in with the key, and the stored signature counter follows the authenticator', async () => {
    const firmId = await firmWithUsers(5, 'ben');
    const { credentialId, factorId } = await enrollKey(firmId, 'ben');
    const [registered] = ofType(await firmEvents(firmId), 'FactorConfirmed', 'ben');
    const registeredCounter = (registered.data.credential as { counter: number }).counter;

    for (let login = 1; login <= 2; login++) {
      const options = await authenticationOptions(firmId, 'ben');
      expect(options.status).toBe(200);
      expect(options.body.rpId).toBe('localhost');
      expect(options.body.allowCredentials).toEqual([
        expect.objectContaining({ id: credentialId, type: 'public-key' }),
      ]);
      const response = await tab.authenticate(options.body);
      const verified = await authenticationVerify(firmId, 'ben', response);
      expect(verified.status).toBe(200);
      expect(verified.body).toMatchObject({ verified: true });

      const { signCount } = await tab.credential(credentialId);
      const succeeded = ofType(await firmEvents(firmId), 'WebAuthnVerificationSucceeded');
      expect(succeeded).toHaveLength(login);
      expect(succeeded[login - 1].data).toMatchObject({
        factorId,
        credentialId,
        counter: signCount,
      });
      expect(signCount).toBe(registeredCounter + login);
    }
    const [factor] = await factors(firmId, 'ben');
    expect(factor.lastUsedAt).toEqual(expect.any(String));
  });

  it('refuses a registration challenge used twice and a replayed assertion', async () => {
    const firmId = await firmWithUsers(5, 'cat');
    const registration = await enrollKey(firmId, 'cat');

    const again = await registrationVerify(firmId, 'cat', registration.response);
    expect(again.status).toBe(409);
    expect(problemType(again)).toBe('challenge-not-pending');

    const response = await assertion(firmId, 'cat');
    expect((await authenticationVerify(firmId, 'cat', response)).status).toBe(200);
    const replayed = await authenticationVerify(firmId, 'cat', response);
    expect(replayed.status).toBe(401);
    expect(replayed.body).toMatchObject({ verified: false, reason: 'unknown-or-used-challenge' });

    const events = await firmEvents(firmId);
    expect(ofType(events, 'FactorConfirmed')).toHaveLength(1);
    expect(ofType(events, 'SeatAssigned')).toHaveLength(1);
    expect(ofType(events, 'WebAuthnVerificationSucceeded')).toHaveLength(1);
    expect(ofType(events, 'WebAuthnVerificationFailed')).toHaveLength(1);
    expect(await factors(firmId, 'cat')).toHaveLength(1);
  });

  it('ignores Idempotency-Key on the login ceremony: fresh options each time, a replayed assertion refused', async () => {
    const firmId = await firmWithUsers(5, 'dora');
    await enrollKey(firmId, 'dora');
    const key = { 'idempotency-key': 'login-dora' };
    const optionsWithKey = () =>
      api().post<PublicKeyCredentialRequestOptionsJSON>(
        `${mfaPath(firmId, 'dora')}/webauthn/authentication/options`,
        host,
        {},
        key,
      );
    const verifyWithKey = (response: AuthenticationResponseJSON) =>
      api().post(`${mfaPath(firmId, 'dora')}/webauthn/authentication/verify`, host, response, key);

    const first = await optionsWithKey();
    const second = await optionsWithKey();
    expectOk(first);
    expectOk(second);
    expect(second.headers.get('idempotent-replayed')).toBeNull();
    expect(second.body.challenge).not.toBe(first.body.challenge);

    const response = await tab.authenticate(second.body);
    const verified = await verifyWithKey(response);
    expect(verified.status).toBe(200);
    expect(verified.body).toMatchObject({ verified: true });
    // The same assertion again under the same key: a new attempt, and its challenge is spent.
    const retried = await verifyWithKey(response);
    expect(retried.status).toBe(401);
    expect(retried.headers.get('idempotent-replayed')).toBeNull();
    expect(retried.body).toMatchObject({ verified: false, reason: 'unknown-or-used-challenge' });
    const events = await firmEvents(firmId);
    expect(ofType(events, 'WebAuthnVerificationSucceeded')).toHaveLength(1);
    expect(ofType(events, 'WebAuthnVerificationFailed')).toHaveLength(1);
  });

  it('verifies one of three simultaneous posts of the same assertion', async () => {
    const firmId = await firmWithUsers(5, 'cody');
    await enrollKey(firmId, 'cody');
    const response = await assertion(firmId, 'cody');
    const answers = await Promise.all(
      [1, 2, 3].map(() => authenticationVerify(firmId, 'cody', response)),
    );
    expect(answers.map((res) => res.status).sort()).toEqual([200, 401, 401]);
    expect(ofType(await firmEvents(firmId), 'WebAuthnVerificationSucceeded')).toHaveLength(1);
  });

  it('refuses a key registered or used on another origin and RP ID', async () => {
    const firmId = await firmWithUsers(5, 'dan', 'eve');
    const lookAlike = pages.url('sub.localhost');
    await tab.show(lookAlike);
    expect(await tab.isSecureContext()).toBe(true);

    // The browser itself will not let sub.localhost claim the service's RP ID...
    const options = await registrationOptions(firmId, 'dan');
    expect(await tab.tryRegister(options.body)).toMatchObject({
      ok: false,
      name: 'SecurityError',
    });
    // ...so a look-alike page relays the service's challenge under its own RP ID.
    const relayed = await tab.register({
      ...options.body,
      rp: { ...options.body.rp, id: 'sub.localhost' },
    });
    const refused = await registrationVerify(firmId, 'dan', relayed);
    expect(refused.status).toBe(400);
    expect(problemType(refused)).toBe('registration-not-verified');
    expect(refused.body.detail).toContain('origin');
    expect(await factors(firmId, 'dan')).toEqual([]);
    expect(await requirement(firmId, 'dan')).toMatchObject({ decision: 'enroll' });

    // Eve's real key, registered on the service's origin...
    await tab.show(pages.url());
    const { credentialId } = await enrollKey(firmId, 'eve');
    const original = await tab.credential(credentialId);
    // ...copied into a key that signs for the look-alike's RP ID: a valid signature over
    // the service's challenge, from the wrong origin and for the wrong RP ID.
    await tab.plugInNewKey();
    await tab.addCredential({ ...original, rpId: 'sub.localhost' });
    await tab.show(lookAlike);
    const options2 = await authenticationOptions(firmId, 'eve');
    expect(await tab.tryAuthenticate(options2.body)).toMatchObject({
      ok: false,
      name: 'SecurityError',
    });
    const options3 = await authenticationOptions(firmId, 'eve');
    const phished = await tab.authenticate({ ...options3.body, rpId: 'sub.localhost' });
    expect(phished.id).toBe(credentialId);
    const answer = await authenticationVerify(firmId, 'eve', phished);
    expect(answer.status).toBe(401);
    expect(answer.body).toMatchObject({ verified: false });
    expect(answer.body.reason).toMatch(/origin/i);

    const events = await firmEvents(firmId);
    expect(ofType(events, 'WebAuthnRegistrationVerified', 'dan')).toEqual([]);
    expect(ofType(events, 'SeatAssigned', 'dan')).toEqual([]);
    expect(ofType(events, 'WebAuthnVerificationSucceeded')).toEqual([]);
  });

  it("refuses another user's key: a credential belongs to one user", async () => {
    const firmId = await firmWithUsers(5, 'fay', 'gus');
    // One authenticator, a credential for each account.
    const fay = await enrollKey(firmId, 'fay');
    const gus = await enrollKey(firmId, 'gus');
    expect(fay.credentialId).not.toBe(gus.credentialId);

    // Fay's key signs Gus's own challenge.
    const options = await authenticationOptions(firmId, 'gus');
    const faysKeyForGus = await tab.authenticate({
      ...options.body,
      allowCredentials: [{ id: fay.credentialId, type: 'public-key' }],
    });
    expect(faysKeyForGus.id).toBe(fay.credentialId);
    const refused = await authenticationVerify(firmId, 'gus', faysKeyForGus);
    expect(refused.status).toBe(401);
    expect(refused.body).toMatchObject({
      verified: false,
      reason: 'credential-not-registered-for-user',
    });

    // Fay's assertion for Fay's challenge, presented for Gus, is refused; for Fay it verifies.
    const faysOwn = await assertion(firmId, 'fay');
    expect((await authenticationVerify(firmId, 'gus', faysOwn)).status).toBe(401);
    expect((await authenticationVerify(firmId, 'fay', faysOwn)).status).toBe(200);

    const events = await firmEvents(firmId);
    expect(ofType(events, 'WebAuthnVerificationSucceeded')).toHaveLength(1);
    expect(
      events.filter(
        (event) =>
          event.type === 'WebAuthnVerificationSucceeded' && event.streamId.endsWith('/gus'),
      ),
    ).toEqual([]);
  });

  it('excludes the keys a user already has, and the browser will not register one twice', async () => {
    const firmId = await firmWithUsers(5, 'hal');
    const { credentialId } = await enrollKey(firmId, 'hal');

    const options = await registrationOptions(firmId, 'hal');
    expect(options.status).toBe(200);
    expect(options.body.excludeCredentials).toEqual([
      expect.objectContaining({ id: credentialId, type: 'public-key' }),
    ]);
    expect(await tab.tryRegister(options.body)).toMatchObject({
      ok: false,
      name: 'InvalidStateError',
    });
    expect(await tab.credentials()).toHaveLength(1);
    expect(await factors(firmId, 'hal')).toHaveLength(1);
  });

  it('refuses a registration with 409 license-exhausted when the last seat went meanwhile, appending nothing', async () => {
    const firmId = await firmWithUsers(1, 'ivy', 'jon');
    // Jon starts while the seat is free...
    const jonsOptions = await registrationOptions(firmId, 'jon');
    expect(jonsOptions.status).toBe(200);
    // ...Ivy takes it...
    await enrollKey(firmId, 'ivy');
    const seatsBefore = await subscriptionEvents(firmId);

    // ...and Jon's key, checked and valid, finds no seat left.
    await tab.plugInNewKey();
    const jonsKey = await tab.register(jonsOptions.body);
    const exhausted = await registrationVerify(firmId, 'jon', jonsKey);
    expect(exhausted.status).toBe(409);
    expect(problemType(exhausted)).toBe('license-exhausted');
    expect(await subscriptionEvents(firmId)).toEqual(seatsBefore);
    expect(await factors(firmId, 'jon')).toEqual([]);
    expect(await requirement(firmId, 'jon')).toMatchObject({ decision: 'bypass' });
    const restart = await registrationOptions(firmId, 'jon');
    expect(restart.status).toBe(409);
    expect(problemType(restart)).toBe('license-exhausted');

    // Ivy holds the seat: she can always add another key, without a second seat.
    await tab.plugInNewKey();
    await enrollKey(firmId, 'ivy');
    expect(await factors(firmId, 'ivy')).toHaveLength(2);
    expect(ofType(await firmEvents(firmId), 'SeatAssigned')).toHaveLength(1);

    // The refusal appended nothing: no verified registration left behind, no seat, no factor.
    expect(ofType(await firmEvents(firmId), 'WebAuthnRegistrationVerified')).toEqual([]);
    // Once a license is free, the same response, still within the enrollment's 10 minutes,
    // confirms the key.
    expect(
      (await api().put(`/v1/firms/${firmId}/mfa/licenses`, operator, { licenseCount: 2 })).status,
    ).toBe(200);
    const resumed = await registrationVerify(firmId, 'jon', jonsKey);
    expect(resumed.status).toBe(200);
    expect(await factors(firmId, 'jon')).toHaveLength(1);
    expect(await requirement(firmId, 'jon')).toMatchObject({ decision: 'verify' });
    // Its challenge is spent now.
    await tab.plugInNewKey();
    const otherKey = await tab.register(jonsOptions.body);
    const again = await registrationVerify(firmId, 'jon', otherKey);
    expect(again.status).toBe(409);
    expect(problemType(again)).toBe('challenge-not-pending');
  });

  it('refuses to register a key already registered to another user of the firm (409), whatever the client claims', async () => {
    const firmId = await firmWithUsers(5, 'lea', 'max');
    const lea = await enrollKey(firmId, 'lea');
    // Max's genuine ceremony, its attested credential id swapped for Lea's: with attestation
    // "none" nothing signs the registration, so a hostile client can claim any credential id.
    const options = await registrationOptions(firmId, 'max');
    await tab.plugInNewKey();
    const genuine = await tab.register(options.body);
    const forged = withCredentialId(genuine, lea.credentialId);
    // What a registration writes to: Max's stream, the seats, the keys' claims.
    const decisive = async () =>
      (await firmEvents(firmId)).filter(
        (event) =>
          event.streamId === `user-${firmId}/max` ||
          event.streamId === `subscription-${firmId}` ||
          event.streamId.startsWith(`securitykey-${firmId}/`),
      );
    const before = await decisive();
    const refused = await registrationVerify(firmId, 'max', forged);
    expect(refused.status).toBe(409);
    expect(problemType(refused)).toBe('credential-registered-to-another-user');
    expect(await decisive()).toEqual(before);
    expect(await factors(firmId, 'max')).toEqual([]);
    // Max's own key on the same challenge still registers.
    expect((await registrationVerify(firmId, 'max', genuine)).status).toBe(200);

    // Once Lea is reset, her old key is nobody's: it may be registered again.
    expect(
      (
        await api().post(`${mfaPath(firmId, 'lea')}/reset`, superuserOf(firmId), {
          reason: 'Key handed over',
        })
      ).status,
    ).toBe(200);
    const next = await registrationOptions(firmId, 'max');
    await tab.plugInNewKey();
    const handedOver = withCredentialId(await tab.register(next.body), lea.credentialId);
    expect((await registrationVerify(firmId, 'max', handedOver)).status).toBe(200);
  });

  it("refuses an assertion whose user handle is not the user's (401)", async () => {
    const firmId = await firmWithUsers(5, 'ned', 'ola');
    const ned = await enrollKey(firmId, 'ned');
    const oneOfOlas = await enrollKey(firmId, 'ola');
    const olasHandle = (await tab.credential(oneOfOlas.credentialId)).userHandle;
    const nedsKey = await tab.credential(ned.credentialId);
    expect(olasHandle).toBeDefined();
    expect(olasHandle).not.toBe(nedsKey.userHandle);
    // A copy of Ned's key whose authenticator says it was made for Ola.
    await tab.plugInNewKey();
    await tab.addCredential({ ...nedsKey, userHandle: olasHandle });
    const signed = await assertion(firmId, 'ned');
    expect(signed.response.userHandle).toBe(base64url(olasHandle!));
    const refused = await authenticationVerify(firmId, 'ned', signed);
    expect(refused.status).toBe(401);
    expect(refused.body).toMatchObject({ verified: false, reason: 'user-handle-mismatch' });
    // Ned's own copy, with Ned's handle, verifies.
    await tab.plugInNewKey();
    await tab.addCredential(nedsKey);
    expect((await authenticationVerify(firmId, 'ned', await assertion(firmId, 'ned'))).status).toBe(
      200,
    );
  });

  it('answers a registration retried after a reset as it answered first, appending nothing', async () => {
    const firmId = await firmWithUsers(5, 'lea');
    const options = await registrationOptions(firmId, 'lea');
    expectOk(options);
    const response = await tab.register(options.body);
    const path = `${mfaPath(firmId, 'lea')}/webauthn/registration/verify`;
    const key = { 'idempotency-key': `register-lea-${firmId}` };
    const first = await api().post(path, host, response, key);
    expectOk(first);
    expectOk(
      await api().post(`${mfaPath(firmId, 'lea')}/reset`, superuserOf(firmId), {
        reason: 'Lost key',
      }),
    );
    // Commands' events only: the mailer may record an email it sent meanwhile.
    const commanded = async () =>
      (await firmEvents(firmId)).filter((event) => event.metadata.actor.role !== 'system');
    const before = await commanded();
    // The stored answer is lost (a crash before it was recorded, or it expired): the
    // command id is still in the log, and the retry answers from there.
    forgetStoredAnswers(service.dataDir);
    const retry = await api().post(path, host, response, key);
    expect(retry.status).toBe(200);
    expect(retry.body).toEqual(first.body);
    expect(await commanded()).toEqual(before);
    expect(await factors(firmId, 'lea')).toEqual([]);
  });

  it('stops the key from authenticating after a superuser reset', async () => {
    const firmId = await firmWithUsers(5, 'kim');
    await enrollKey(firmId, 'kim');
    const signedBeforeReset = await assertion(firmId, 'kim');

    const reset = await api().post(`${mfaPath(firmId, 'kim')}/reset`, superuserOf(firmId), {
      reason: 'Lost key',
    });
    expect(reset.status).toBe(200);
    expect(reset.body).toMatchObject({ factorsRemoved: 1 });

    const late = await authenticationVerify(firmId, 'kim', signedBeforeReset);
    expect(late.status).toBe(401);
    expect(late.body).toMatchObject({ verified: false });
    const options = await authenticationOptions(firmId, 'kim');
    expect(options.status).toBe(409);
    expect(problemType(options)).toBe('factor-not-enrolled');

    expect(await factors(firmId, 'kim')).toEqual([]);
    expect(await requirement(firmId, 'kim')).toMatchObject({ decision: 'enroll' });
    const events = await firmEvents(firmId);
    expect(ofType(events, 'EnrollmentReset', 'kim')).toEqual([
      expect.objectContaining({ data: expect.objectContaining({ reason: 'Lost key' }) }),
    ]);
    expect(ofType(events, 'SeatReleased', 'kim')).toHaveLength(1);
    expect(ofType(events, 'WebAuthnVerificationSucceeded')).toEqual([]);
  });
});

/**
 * The same registration response with another credential id in its attested
 * credential data (authData: rpIdHash 32, flags 1, counter 4, AAGUID 16,
 * id length 2, id, public key...). Only possible because attestation "none"
 * signs nothing: the forgery a hostile client can make.
 */
function withCredentialId(response: RegistrationResponseJSON, credentialId: string) {
  const attestation = isoCBOR.decodeFirst<Map<string, Parameters<typeof isoCBOR.encode>[0]>>(
    Buffer.from(response.response.attestationObject, 'base64url'),
  );
  const authData = Buffer.from(attestation.get('authData') as Uint8Array);
  const idLength = authData.readUInt16BE(53);
  const id = Buffer.from(credentialId, 'base64url');
  const length = Buffer.alloc(2);
  length.writeUInt16BE(id.length);
  const forged = Buffer.concat([
    authData.subarray(0, 53),
    length,
    id,
    authData.subarray(55 + idLength),
  ]);
  attestation.set('authData', new Uint8Array(forged));
  return {
    ...response,
    id: credentialId,
    rawId: credentialId,
    response: {
      ...response.response,
      attestationObject: Buffer.from(isoCBOR.encode(attestation)).toString('base64url'),
      authenticatorData: undefined,
      publicKey: undefined,
    },
  } as RegistrationResponseJSON;
}
