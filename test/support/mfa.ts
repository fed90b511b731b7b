import { execFileSync } from 'node:child_process';
import { Api, token } from './harness';

/*
 * Fixtures for enrollment and login tests. TOTP codes come from Debian's
 * oathtool, an implementation independent of the library the service
 * verifies with.
 */

export const operator = token('operator', { sub: 'ops-1' });
export const host = token('host', { sub: 'host-app' });
export const superuserOf = (firmId: string) => token('superuser', { firm: firmId, sub: 'admin-1' });

/** An active subscription with `licenseCount` seats and MFA on for case managers. */
export async function activeFirm(
  api: Api,
  firmId: string,
  licenseCount: number,
  switches: { caseManagers?: boolean; vendorCaseManagers?: boolean } = { caseManagers: true },
): Promise<void> {
  const admin = superuserOf(firmId);
  const base = `/v1/firms/${firmId}/mfa`;
  expectOk(await api.post(`${base}/subscription/request`, admin, { plan: 'standard' }));
  expectOk(
    await api.post(`${base}/subscription/activate`, operator, { licenseCount, plan: 'standard' }),
  );
  if (switches.caseManagers) {
    expectOk(await api.put(`${base}/enablement/case-managers`, admin, { enabled: true }));
  }
  if (switches.vendorCaseManagers) {
    expectOk(await api.put(`${base}/enablement/vendor-case-managers`, admin, { enabled: true }));
  }
}

export async function registerUser(
  api: Api,
  firmId: string,
  userId: string,
  profile: Record<string, unknown> = {},
): Promise<void> {
  expectOk(
    await api.put(`/v1/firms/${firmId}/users/${userId}`, host, {
      role: 'case-manager',
      name: `User ${userId}`,
      email: `${userId}@firm.example`,
      ...profile,
    }),
  );
}

export function mfaPath(firmId: string, userId: string): string {
  return `/v1/firms/${firmId}/users/${userId}/mfa`;
}

/** The base32 secret of an otpauth URI. */
export function secretOf(otpauthUri: string): string {
  const secret = new URL(otpauthUri).searchParams.get('secret');
  if (!secret) throw new Error(`No secret in ${otpauthUri}`);
  return secret;
}

/** The code oathtool computes for `secret` at `at`, `steps` 30 s steps away. */
export function oathtool(secret: string, at: Date, steps = 0): string {
  const seconds = Math.floor(at.getTime() / 1000) + steps * 30;
  return execFileSync('oathtool', ['--totp', '-b', '-N', `@${seconds}`, secret], {
    encoding: 'utf8',
  }).trim();
}

export interface EnrolledTotp {
  enrollmentId: string;
  factorId: string;
  secret: string;
  position: string;
}

/** Starts and confirms a TOTP enrollment with oathtool's code for `at`. */
export async function enrollTotp(
  api: Api,
  firmId: string,
  userId: string,
  at: Date = new Date(),
): Promise<EnrolledTotp> {
  const started = await api.post(`${mfaPath(firmId, userId)}/totp/enrollment`, host, {});
  expectOk(started, 201);
  const secret = secretOf(started.body.otpauthUri);
  const confirmed = await api.post(
    `${mfaPath(firmId, userId)}/totp/enrollment/${started.body.enrollmentId}/confirm`,
    host,
    { code: oathtool(secret, at) },
  );
  expectOk(confirmed);
  return {
    enrollmentId: started.body.enrollmentId,
    factorId: confirmed.body.factorId,
    secret,
    position: confirmed.body.position,
  };
}

export function expectOk(response: { status: number; text: string }, status = 200): void {
  if (response.status !== status) {
    throw new Error(`Expected ${status}, got ${response.status}: ${response.text}`);
  }
}
