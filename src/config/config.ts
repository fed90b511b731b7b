import { createPublicKey, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { AttestationPolicy, attestationPolicyFromEnv } from './attestation';
import { DEFAULT_LOCKOUT, LockoutPolicy } from '../verification/verification.decider';
import { ConfigError } from './config-error';

/**
 * Typed configuration from the environment, validated once at start. A bad
 * value is a ConfigError naming the variable; main.ts prints it as one line.
 */
export interface AppConfig {
  port: number;
  host: string;
  dataDir: string;
  jwt: { algorithm: 'HS256'; secret: Buffer } | { algorithm: 'RS256'; publicKey: string };
  /** Wraps the per-user data keys that encrypt TOTP secrets. 32 bytes. */
  masterKey: Buffer;
  /**
   * During a rotation, the master key before `masterKey` (MFA_MASTER_KEY_PREVIOUS): data keys
   * that open only with it are re-wrapped with `masterKey` at start. 32 bytes, or null.
   */
  previousMasterKey: Buffer | null;
  eventStoreUrl: string | null;
  /** Read models, checkpoints, data keys and idempotency keys in MongoDB instead of DATA_DIR. */
  mongodbUrl: string | null;
  smtpUrl: string | null;
  mailFrom: string;
  /** The longest wait between two attempts to send one email. */
  mailRetryMaxMs: number;
  /**
   * Process managers' leases (DESIGN §6, one owner at a time across instances):
   * how long a lease lasts unrenewed, hence how long a crashed owner's work
   * waits for a standby; and how often it is renewed (at most a third of it).
   */
  processLease: { ttlMs: number; renewEveryMs: number };
  /**
   * Tamper-evidence anchors (ADR 0017): a firm's stream heads are anchored in
   * its audit stream after `everyEvents` of its events, and at most
   * `maxDelayMs` after the oldest event not anchored yet.
   */
  auditAnchors: { everyEvents: number; maxDelayMs: number };
  webauthn: {
    rpId: string;
    rpName: string;
    origin: string;
    /** Which security keys registration admits (src/enrollment/attestation-policy.ts). */
    attestation: AttestationPolicy;
  };
  /**
   * The TOTP guessing budget and the enrollment caps (DESIGN §4, NIST SP
   * 800-63B §5.2.2; docs/security.md has the odds they give).
   */
  totp: {
    lockout: LockoutPolicy;
    /** Confirmed TOTP factors a user may hold: each one is checked at login, widening the odds. */
    maxFactors: number;
    /** Pending enrollments a user may have; a new start beyond replaces the oldest. */
    maxPendingEnrollments: number;
  };
  /** Largest request body accepted, in bytes. */
  bodyLimit: number;
  /** Deepest nesting of arrays and objects accepted in a JSON body. */
  maxJsonDepth: number;
  http: HttpLimits;
  rateLimits: RateLimits;
  /**
   * The oldest token accepted, in seconds since its `iat`; null when only `exp`
   * bounds a token's life.
   */
  jwtMaxAgeSeconds: number | null;
}

/**
 * How long the HTTP server waits for a client, in milliseconds, and how many
 * connections it holds. A client that stalls is cut off, so a crowd of slow
 * clients cannot hold the service's sockets (docs/security.md).
 */
export interface HttpLimits {
  /** The whole header block must arrive within this. */
  headersTimeoutMs: number;
  /** The whole request, headers and body, must arrive within this. */
  requestTimeoutMs: number;
  /** An idle kept-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** Connections held at once; more are closed on accept. */
  maxConnections: number;
  /**
   * Addresses or CIDR ranges of reverse proxies whose `X-Forwarded-For` is
   * believed for the client address; empty: the socket's peer is the client.
   */
  trustedProxies: string[];
}

/** At most `points` requests (or failures) per `windowSeconds`, in a fixed window. */
export interface RateLimit {
  points: number;
  windowSeconds: number;
}

/** Each limit, or null when switched off. API.md "Limits", docs/security.md. */
export interface RateLimits {
  /** Verification and enrollment requests per target user (the path's user). */
  perUser: RateLimit | null;
  /** Failed verifications per caller (the token's role and `sub`). */
  failuresPerCaller: RateLimit | null;
  /** Failed verifications per firm (the path's firm), whoever the users and callers. */
  failuresPerFirm: RateLimit | null;
  /** Requests without a valid token, per client address. */
  perAddress: RateLimit | null;
}

export { ConfigError };

/** Nest injection token of the AppConfig (provided by the InfrastructureModule). */
export const APP_CONFIG = Symbol('AppConfig');

export interface LoadedConfig {
  config: AppConfig;
  /** Things a developer should know at start (generated secrets). */
  warnings: string[];
}

type Env = Record<string, string | undefined>;

export const SERVICE_NAME = 'MFA Service';

export function loadConfig(env: Env = process.env): LoadedConfig {
  const warnings: string[] = [];
  const dataDir = resolve(nonEmpty(env, 'DATA_DIR') ?? './var');
  const config: AppConfig = {
    port: port(env),
    host: nonEmpty(env, 'HOST') ?? '127.0.0.1',
    dataDir,
    jwt: jwtConfig(env, dataDir, warnings),
    masterKey: masterKey(env, dataDir, warnings),
    previousMasterKey: previousMasterKey(env),
    eventStoreUrl: url(env, 'EVENTSTORE_URL', [
      'esdb:',
      'esdb+discover:',
      'kurrentdb:',
      'kurrentdb+discover:',
      'kurrent:',
      'kurrent+discover:',
    ]),
    mongodbUrl: url(env, 'MONGODB_URL', ['mongodb:', 'mongodb+srv:']),
    smtpUrl: url(env, 'SMTP_URL', ['smtp:', 'smtps:']),
    mailFrom: mailFrom(env),
    mailRetryMaxMs: positiveSeconds(env, 'MAIL_RETRY_MAX_SECONDS', 300) * 1000,
    processLease: processLease(env),
    auditAnchors: {
      everyEvents: wholeNumber(env, 'AUDIT_ANCHOR_EVERY', 100, 1, 1_000_000),
      maxDelayMs: positiveSeconds(env, 'AUDIT_ANCHOR_SECONDS', 60) * 1000,
    },
    webauthn: {
      rpId: hostname(env, 'WEBAUTHN_RP_ID') ?? 'localhost',
      rpName: nonEmpty(env, 'WEBAUTHN_RP_NAME') ?? SERVICE_NAME,
      // Browsers sign the bare origin: `https://mfa.example/` must compare equal to it.
      origin: originOf(url(env, 'WEBAUTHN_ORIGIN', ['http:', 'https:'])) ?? 'http://localhost:3000',
      attestation: attestationPolicyFromEnv(env, warnings),
    },
    totp: totpPolicy(env),
    bodyLimit: 64 * 1024,
    maxJsonDepth: 32,
    http: httpLimits(env),
    rateLimits: {
      perUser: rateLimit(env, 'RATE_LIMIT_PER_USER', { points: 30, windowSeconds: 900 }),
      failuresPerCaller: rateLimit(env, 'RATE_LIMIT_FAILURES_PER_CALLER', {
        points: 1000,
        windowSeconds: 900,
      }),
      failuresPerFirm: rateLimit(env, 'RATE_LIMIT_FAILURES_PER_FIRM', {
        points: 300,
        windowSeconds: 900,
      }),
      perAddress: rateLimit(env, 'RATE_LIMIT_PER_ADDRESS', { points: 120, windowSeconds: 60 }),
    },
    jwtMaxAgeSeconds: optionalWholeSeconds(env, 'MFA_JWT_MAX_AGE'),
  };
  return { config, warnings };
}

function nonEmpty(env: Env, name: string): string | undefined {
  const value = env[name];
  if (value === undefined) return undefined;
  if (value.trim() === '') throw new ConfigError(name, 'is set but empty');
  return value.trim();
}

function port(env: Env): number {
  const raw = nonEmpty(env, 'PORT');
  if (raw === undefined) return 3000;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value > 65535) {
    throw new ConfigError('PORT', `"${raw}" is not a TCP port (0-65535)`);
  }
  return value;
}

function url(env: Env, name: string, protocols: string[]): string | null {
  const raw = nonEmpty(env, name);
  if (raw === undefined) return null;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(name, 'is not a valid URL');
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(
      name,
      `must start with ${protocols.map((p) => `${p}//`).join(' or ')}, not ${parsed.protocol}//`,
    );
  }
  return raw;
}

function positiveSeconds(env: Env, name: string, fallback: number): number {
  const raw = nonEmpty(env, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!/^\d+(\.\d+)?$/.test(raw) || value <= 0 || value > 86_400) {
    throw new ConfigError(name, `"${raw}" is not a number of seconds between 0 and 86400`);
  }
  return value;
}

function httpLimits(env: Env): HttpLimits {
  const headersTimeoutMs = positiveSeconds(env, 'HTTP_HEADERS_TIMEOUT_SECONDS', 10) * 1000;
  const requestTimeoutMs = positiveSeconds(env, 'HTTP_REQUEST_TIMEOUT_SECONDS', 20) * 1000;
  // Node refuses a headers timeout longer than the request's, which includes the headers.
  if (headersTimeoutMs > requestTimeoutMs) {
    throw new ConfigError(
      'HTTP_HEADERS_TIMEOUT_SECONDS',
      'must not be longer than HTTP_REQUEST_TIMEOUT_SECONDS (the request includes its headers)',
    );
  }
  return {
    headersTimeoutMs,
    requestTimeoutMs,
    keepAliveTimeoutMs: positiveSeconds(env, 'HTTP_KEEP_ALIVE_TIMEOUT_SECONDS', 10) * 1000,
    maxConnections: wholeNumber(env, 'HTTP_MAX_CONNECTIONS', 1000, 1, 1_000_000),
    trustedProxies: trustedProxies(env),
  };
}

function wholeNumber(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = nonEmpty(env, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max) {
    throw new ConfigError(name, `"${raw}" is not a whole number between ${min} and ${max}`);
  }
  return value;
}

function totpPolicy(env: Env): AppConfig['totp'] {
  const lockAfter = wholeNumber(env, 'MFA_TOTP_LOCK_AFTER', DEFAULT_LOCKOUT.lockAfter, 1, 100);
  // NIST SP 800-63B §5.2.2: no more than 100 consecutive failed attempts.
  const maxFailures = wholeNumber(
    env,
    'MFA_TOTP_MAX_FAILURES',
    DEFAULT_LOCKOUT.maxFailures,
    1,
    100,
  );
  if (maxFailures < lockAfter) {
    throw new ConfigError(
      'MFA_TOTP_MAX_FAILURES',
      `must be at least MFA_TOTP_LOCK_AFTER (${lockAfter})`,
    );
  }
  return {
    lockout: {
      lockAfter,
      firstLockMs:
        wholeNumber(env, 'MFA_TOTP_LOCK_MINUTES', DEFAULT_LOCKOUT.firstLockMs / 60_000, 1, 1440) *
        60_000,
      maxLockMs: DEFAULT_LOCKOUT.maxLockMs,
      maxFailures,
    },
    maxFactors: wholeNumber(env, 'MFA_MAX_TOTP_FACTORS', 5, 1, 20),
    maxPendingEnrollments: wholeNumber(env, 'MFA_MAX_PENDING_ENROLLMENTS', 3, 1, 20),
  };
}

function processLease(env: Env): AppConfig['processLease'] {
  const ttl = positiveSeconds(env, 'PROCESS_LEASE_SECONDS', 10);
  const renew = positiveSeconds(env, 'PROCESS_LEASE_RENEW_SECONDS', Math.min(2, ttl / 5));
  // An owner stops working once half its lease is gone unrenewed: renewing at most every
  // third of it leaves room for a failed renewal before that.
  if (renew > ttl / 3) {
    throw new ConfigError(
      'PROCESS_LEASE_RENEW_SECONDS',
      `must be at most a third of PROCESS_LEASE_SECONDS (${ttl})`,
    );
  }
  return { ttlMs: Math.round(ttl * 1000), renewEveryMs: Math.round(renew * 1000) };
}

function optionalWholeSeconds(env: Env, name: string): number | null {
  const raw = nonEmpty(env, name);
  if (raw === undefined) return null;
  return wholeNumber(env, name, 0, 1, 31_536_000);
}

/** `<requests>/<seconds>`, e.g. `30/900`, or `off`. */
function rateLimit(env: Env, name: string, fallback: RateLimit): RateLimit | null {
  const raw = nonEmpty(env, name);
  if (raw === undefined) return fallback;
  if (raw.toLowerCase() === 'off') return null;
  const match = /^(\d+)\s*\/\s*(\d+)$/.exec(raw);
  const points = Number(match?.[1]);
  const windowSeconds = Number(match?.[2]);
  if (!match || points < 1 || points > 1_000_000 || windowSeconds < 1 || windowSeconds > 86_400) {
    throw new ConfigError(
      name,
      `"${raw}" is not <count>/<seconds> (count 1-1000000, seconds 1-86400, e.g. 30/900) or off`,
    );
  }
  return { points, windowSeconds };
}

function trustedProxies(env: Env): string[] {
  const raw = nonEmpty(env, 'HTTP_TRUST_PROXY');
  if (raw === undefined) return [];
  const entries = raw.split(',').map((entry) => entry.trim());
  for (const entry of entries) {
    const [address, bits, ...rest] = entry.split('/');
    const prefix = Number(bits);
    const valid =
      isIP(address) !== 0 &&
      rest.length === 0 &&
      (bits === undefined || (/^\d+$/.test(bits) && prefix <= (isIP(address) === 4 ? 32 : 128)));
    if (!valid) {
      throw new ConfigError(
        'HTTP_TRUST_PROXY',
        `"${entry}" is not an IP address or CIDR range (comma-separated list)`,
      );
    }
  }
  return entries;
}

function hostname(env: Env, name: string): string | undefined {
  const raw = nonEmpty(env, name);
  if (raw !== undefined && !/^[a-z0-9.-]+$/i.test(raw)) {
    throw new ConfigError(name, 'must be a bare host name such as example.com');
  }
  return raw;
}

function mailFrom(env: Env): string {
  const raw = nonEmpty(env, 'MAIL_FROM');
  if (raw === undefined) return 'MFA Service <mfa@localhost>';
  if (!/^[^\s<>@]+@[^\s<>@]+$|<[^\s<>@]+@[^\s<>@]+>$/.test(raw)) {
    throw new ConfigError('MAIL_FROM', 'must be an email address, optionally as "Name <address>"');
  }
  return raw;
}

function jwtConfig(env: Env, dataDir: string, warnings: string[]): AppConfig['jwt'] {
  const secret = env.MFA_JWT_SECRET;
  const publicKey = env.MFA_JWT_PUBLIC_KEY;
  if (secret !== undefined && publicKey !== undefined) {
    throw new ConfigError(
      'MFA_JWT_PUBLIC_KEY',
      'set either MFA_JWT_SECRET or MFA_JWT_PUBLIC_KEY, not both',
    );
  }
  if (publicKey !== undefined) {
    if (!/-----BEGIN PUBLIC KEY-----[\s\S]+-----END PUBLIC KEY-----/.test(publicKey)) {
      throw new ConfigError('MFA_JWT_PUBLIC_KEY', 'must be a PEM "BEGIN PUBLIC KEY" block');
    }
    // Read now: a block that is not a key, or not an RSA key, would otherwise fail the start with
    // a stack trace (unreadable) or refuse every token (another key type).
    let keyType: string | undefined;
    try {
      keyType = createPublicKey(publicKey).asymmetricKeyType;
    } catch {
      throw new ConfigError('MFA_JWT_PUBLIC_KEY', 'is not a readable public key');
    }
    if (keyType !== 'rsa') {
      throw new ConfigError('MFA_JWT_PUBLIC_KEY', `must be an RSA key for RS256, not ${keyType}`);
    }
    return { algorithm: 'RS256', publicKey };
  }
  if (secret !== undefined) {
    if (Buffer.byteLength(secret) < 32) {
      throw new ConfigError('MFA_JWT_SECRET', 'must be at least 32 bytes long for HS256');
    }
    return { algorithm: 'HS256', secret: Buffer.from(secret) };
  }
  const generated = generatedSecret(dataDir, 'jwt-secret', () =>
    randomBytes(48).toString('base64url'),
  );
  warnings.push(
    `MFA_JWT_SECRET is not set: using the development secret ${generated.created ? 'generated now in' : 'kept in'} ${generated.file}. Set MFA_JWT_SECRET in production.`,
  );
  return { algorithm: 'HS256', secret: Buffer.from(generated.value) };
}

function masterKey(env: Env, dataDir: string, warnings: string[]): Buffer {
  const raw = env.MFA_MASTER_KEY;
  if (raw !== undefined) return decodeMasterKey(raw);
  const generated = generatedSecret(dataDir, 'master-key', () =>
    randomBytes(32).toString('base64'),
  );
  warnings.push(
    `MFA_MASTER_KEY is not set: using the development key ${generated.created ? 'generated now in' : 'kept in'} ${generated.file}. Set MFA_MASTER_KEY in production and keep it apart from the data.`,
  );
  return decodeMasterKey(generated.value);
}

/** Rotation: the key the stored data keys were wrapped with, until they are re-wrapped. */
function previousMasterKey(env: Env): Buffer | null {
  const raw = env.MFA_MASTER_KEY_PREVIOUS;
  if (raw === undefined) return null;
  const previous = decodeMasterKey(raw, 'MFA_MASTER_KEY_PREVIOUS');
  const current = env.MFA_MASTER_KEY;
  if (current !== undefined && decodeMasterKey(current).equals(previous)) {
    throw new ConfigError('MFA_MASTER_KEY_PREVIOUS', 'is the same key as MFA_MASTER_KEY');
  }
  return previous;
}

/** 32 bytes as 64 hex digits or as base64. */
export function decodeMasterKey(raw: string, variable = 'MFA_MASTER_KEY'): Buffer {
  const value = raw.trim();
  const key = /^[0-9a-f]{64}$/i.test(value)
    ? Buffer.from(value, 'hex')
    : /^[A-Za-z0-9+/]{43}=?$/.test(value)
      ? Buffer.from(value, 'base64')
      : undefined;
  if (!key || key.length !== 32) {
    throw new ConfigError(variable, 'must be 32 bytes, as 64 hex digits or as base64');
  }
  return key;
}

/** Development secrets live in DATA_DIR/secrets, readable by the owner only. */
export function generatedSecret(
  dataDir: string,
  name: string,
  make: () => string,
): { value: string; file: string; created: boolean } {
  const dir = join(dataDir, 'secrets');
  const file = join(dir, name);
  if (existsSync(file)) return { value: readFileSync(file, 'utf8').trim(), file, created: false };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const value = make();
  try {
    writeFileSync(file, `${value}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    // Another process started on the same DATA_DIR at the same moment and won.
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return { value: readFileSync(file, 'utf8').trim(), file, created: false };
  }
  chmodSync(file, 0o600);
  return { value, file, created: true };
}

function originOf(value: string | null | undefined): string | undefined {
  return value ? new URL(value).origin : undefined;
}
