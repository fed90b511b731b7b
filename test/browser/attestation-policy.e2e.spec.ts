import type {
  PublicKeyCredentialCreationOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import {
  launchChromium,
  PageServer,
  SecurityKeyTab,
  startPageServer,
  U2F_SECURITY_KEY,
  VIRTUAL_AUTHENTICATOR_AAGUID,
} from '../support/browser';
import { streams } from '../../src/shared/ids';
import { ApiResponse, RunningService, startService, tempDir } from '../support/harness';
import { activeFirm, expectOk, host, mfaPath, registerUser } from '../support/mfa';

/*
 * Issue 11 item 12, DESIGN §2.4: any authenticator by default; with
 * WEBAUTHN_ATTESTATION=direct only those whose verified attestation names an
 * AAGUID on WEBAUTHN_ALLOWED_AAGUIDS (and, with WEBAUTHN_ATTESTATION_ROOTS,
 * whose certificate chains to one of those roots). Debian's Chromium with a
 * CDP virtual authenticator; one service per policy, one browser for the file.
 */
describe('The attestation policy in a real browser', () => {
  const ANOTHER_MODEL = 'cb69481e-8ff7-4039-93ec-0a2729a154a8';
  let pages: PageServer;
  let browser: Browser;
  let tab: SecurityKeyTab;
  const services: Record<
    'anyKey' | 'allowsTheVirtualKey' | 'allowsAnotherModel' | 'requiresARoot',
    RunningService
  > = {} as never;
  let rootDir: string;
  let firmCounter = 0;

  beforeAll(async () => {
    pages = await startPageServer();
    rootDir = tempDir('mfa-attestation-root-');
    const webauthn = { WEBAUTHN_RP_ID: 'localhost', WEBAUTHN_ORIGIN: pages.origin() };
    const direct = (allowed: string, more: Record<string, string> = {}) => ({
      ...webauthn,
      WEBAUTHN_ATTESTATION: 'direct',
      WEBAUTHN_ALLOWED_AAGUIDS: allowed,
      ...more,
    });
    let started: RunningService[];
    [browser, ...started] = await Promise.all([
      launchChromium(),
      startService({ env: webauthn }),
      startService({
        env: direct(`${ANOTHER_MODEL}, ${VIRTUAL_AUTHENTICATOR_AAGUID.toUpperCase()}`),
      }),
      startService({ env: direct(ANOTHER_MODEL) }),
      startService({
        env: direct(VIRTUAL_AUTHENTICATOR_AAGUID, {
          WEBAUTHN_ATTESTATION_ROOTS: selfSignedRoot(rootDir),
        }),
      }),
    ]);
    [
      services.anyKey,
      services.allowsTheVirtualKey,
      services.allowsAnotherModel,
      services.requiresARoot,
    ] = started;
    tab = await SecurityKeyTab.open(browser, pages.url());
  });

  beforeEach(async () => {
    await tab.show(pages.url());
    await tab.plugInNewKey();
  });

  afterAll(async () => {
    await Promise.all([
      browser?.close(),
      pages?.close(),
      ...Object.values(services).map((service) => service.stop()),
    ]);
    rmSync(rootDir, { recursive: true, force: true });
  });

  async function userOf(service: RunningService): Promise<{ firmId: string; userId: string }> {
    const firmId = `attestation-firm-${++firmCounter}`;
    await activeFirm(service.api, firmId, 5);
    await registerUser(service.api, firmId, 'ann');
    return { firmId, userId: 'ann' };
  }

  const registrationOptions = (service: RunningService, firmId: string, userId: string) =>
    service.api.post<PublicKeyCredentialCreationOptionsJSON & { enrollmentId: string }>(
      `${mfaPath(firmId, userId)}/webauthn/registration/options`,
      host,
      {},
    );
  const registrationVerify = (
    service: RunningService,
    firmId: string,
    userId: string,
    response: RegistrationResponseJSON,
  ) => service.api.post(`${mfaPath(firmId, userId)}/webauthn/registration/verify`, host, response);
  /** The user's stream and the firm's subscription stream (seats): what a registration appends to. */
  const registrationEvents = async (service: RunningService, firmId: string, userId: string) =>
    (await service.events()).filter((event) =>
      [streams.user(firmId, userId), streams.subscription(firmId)].includes(event.streamId),
    );
  const problemType = (res: ApiResponse) => String(res.body?.type ?? '').replace(/^.*\//, '');

  /** Options from the service, the browser's ceremony, the answer to the verification. */
  async function register(service: RunningService) {
    const { firmId, userId } = await userOf(service);
    const options = await registrationOptions(service, firmId, userId);
    expectOk(options);
    const response = await tab.register(options.body);
    const before = await registrationEvents(service, firmId, userId);
    const verified = await registrationVerify(service, firmId, userId, response);
    const appended = (await registrationEvents(service, firmId, userId)).slice(before.length);
    return { firmId, userId, options: options.body, verified, appended };
  }

  async function expectRefused(
    service: RunningService,
    registration: Awaited<ReturnType<typeof register>>,
    detail: RegExp,
  ) {
    const { firmId, userId, verified, appended } = registration;
    expect(verified.status).toBe(409);
    expect(verified.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(problemType(verified)).toBe('authenticator-not-allowed');
    expect(verified.body.detail).toMatch(detail);
    expect(appended).toEqual([]);
    const seats = (await service.events()).filter(
      (event) => event.metadata.firmId === firmId && event.type === 'SeatAssigned',
    );
    expect(seats).toEqual([]);
    const factors = await service.api.get(`${mfaPath(firmId, userId)}/factors`, host);
    expect(factors.body).toEqual([]);
  }

  it("the virtual authenticator's AAGUID, as the browser reports it under direct attestation", async () => {
    const aaguid = await tab.page.evaluate(async () => {
      // The page's own WebAuthn API: no library between the browser and this answer.
      const credential = await (globalThis as any).navigator.credentials.create({
        publicKey: {
          rp: { id: 'localhost', name: 'probe' },
          user: { id: new Uint8Array(16), name: 'probe', displayName: 'probe' },
          challenge: new Uint8Array(32),
          pubKeyCredParams: [{ type: 'public-key', alg: -7 }],
          attestation: 'direct',
        },
      });
      const authData = new Uint8Array(credential.response.getAuthenticatorData() as ArrayBuffer);
      // rpIdHash (32) + flags (1) + signCount (4), then the AAGUID (16): WebAuthn §6.1.
      return Array.from(authData.slice(37, 53), (byte) => byte.toString(16).padStart(2, '0')).join(
        '',
      );
    });
    expect(aaguid).toBe(VIRTUAL_AUTHENTICATOR_AAGUID.replace(/-/g, ''));
  });

  it('by default asks for no attestation and registers any authenticator', async () => {
    const registration = await register(services.anyKey);
    expect(registration.options.attestation).toBe('none');
    expect(registration.verified.status).toBe(200);
    const confirmed = registration.appended.find((event) => event.type === 'FactorConfirmed');
    expect(confirmed?.data).toMatchObject({ credential: { attestationFormat: 'none' } });
  });

  it('with direct attestation, registers a key whose verified statement names an allowed AAGUID', async () => {
    const registration = await register(services.allowsTheVirtualKey);
    expect(registration.options.attestation).toBe('direct');
    expect(registration.verified.status).toBe(200);
    const confirmed = registration.appended.find((event) => event.type === 'FactorConfirmed');
    expect(confirmed?.data).toMatchObject({
      credential: { aaguid: VIRTUAL_AUTHENTICATOR_AAGUID, attestationFormat: 'packed' },
    });
  });

  it('with direct attestation, refuses a key whose AAGUID is not on the allow-list, and appends nothing', async () => {
    const service = services.allowsAnotherModel;
    const registration = await register(service);
    expect(registration.options.attestation).toBe('direct');
    await expectRefused(service, registration, new RegExp(VIRTUAL_AUTHENTICATOR_AAGUID));
    expect(registration.verified.body).toMatchObject({
      aaguid: VIRTUAL_AUTHENTICATOR_AAGUID,
      attestationFormat: 'packed',
    });
  });

  it('refuses a U2F-only key: its attestation names no model', async () => {
    await tab.plugInNewKey(U2F_SECURITY_KEY);
    const service = services.allowsTheVirtualKey;
    const registration = await register(service);
    await expectRefused(service, registration, /names no authenticator model/);
    expect(registration.verified.body).toMatchObject({ attestationFormat: 'fido-u2f' });
  });

  it('with attestation roots configured, refuses an allowed AAGUID whose certificate chains to none of them', async () => {
    const service = services.requiresARoot;
    const registration = await register(service);
    await expectRefused(service, registration, /does not chain to any of the configured roots/);
  });

  it('a refusal leaves the challenge open: the same options register an admitted key', async () => {
    const service = services.allowsTheVirtualKey;
    const { firmId, userId } = await userOf(service);
    const options = await registrationOptions(service, firmId, userId);
    expectOk(options);
    await tab.plugInNewKey(U2F_SECURITY_KEY);
    const refused = await registrationVerify(
      service,
      firmId,
      userId,
      await tab.register(options.body),
    );
    expect(refused.status).toBe(409);
    await tab.plugInNewKey();
    const admitted = await registrationVerify(
      service,
      firmId,
      userId,
      await tab.register(options.body),
    );
    expect(admitted.status).toBe(200);
    const factors = await service.api.get(`${mfaPath(firmId, userId)}/factors`, host);
    expect(factors.body).toEqual([expect.objectContaining({ type: 'webauthn' })]);
  });
});

/** A root certificate that signed nothing the virtual authenticator holds (PEM, from openssl). */
function selfSignedRoot(dir: string): string {
  const keyFile = join(dir, 'root.key');
  return execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      keyFile,
      '-subj',
      '/C=US/O=Example Firm/CN=Example Attestation Root',
      '-days',
      '2',
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
  );
}
