import jwt from 'jsonwebtoken';
import { parseArgs } from 'node:util';
import { AppConfig } from '../config/config';
import { TOKEN_ROLES, TokenRole } from '../http/auth';
import { isValidId } from '../shared/ids';
import { cliConfiguration, runCli, UsageError } from './run-cli';

const USAGE = `Mints a development token signed with the configured HS256 secret (the one
\`npm start\` generated under DATA_DIR, or MFA_JWT_SECRET).

usage: npm run -s token -- --role ROLE [--firm ID] [--sub ID] [--ttl SECONDS] [--url]

  --role   ${TOKEN_ROLES.join(', ')}
  --firm   the firm the token is scoped to (needed by superuser and user)
  --sub    the caller's id (default dev-ROLE; a user token with --url needs it: the user id)
  --ttl    lifetime in seconds (default 3600; 900 with --url)
  --url    print a sign-in link instead of the bare token, its token in the fragment:
           superuser, operator  BASE/admin#token=JWT
           user                 BASE/enroll#token=JWT
           BASE is WEBAUTHN_ORIGIN when set, else http://HOST:PORT, where a HOST of
           127.0.0.1 or 0.0.0.0 is written localhost (WebAuthn's default origin is
           http://localhost:3000)

Exit status: 0 printed, 2 an option or configuration error.`;

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  role: { type: 'string' },
  firm: { type: 'string' },
  sub: { type: 'string' },
  ttl: { type: 'string' },
  url: { type: 'boolean' },
} as const;

/** The page each role signs in on, with `--url`. */
const SIGN_IN_PAGES: Partial<Record<TokenRole, string>> = {
  superuser: '/admin',
  operator: '/admin',
  user: '/enroll',
};

/** A sign-in link's token lives briefly: it sits in a browser's history and address bar. */
const URL_TTL_SECONDS = 900;
const DEFAULT_TTL_SECONDS = 3600;

async function main(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({ args: [...argv], options: OPTIONS, strict: true });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const role = values.role as TokenRole | undefined;
  if (!role || !TOKEN_ROLES.includes(role)) {
    throw new UsageError(`--role must be one of ${TOKEN_ROLES.join(', ')}`);
  }
  if (values.firm !== undefined && !isValidId(values.firm)) {
    throw new UsageError('--firm is not a valid id');
  }
  if ((role === 'superuser' || role === 'user') && values.firm === undefined) {
    throw new UsageError(`a ${role} token needs --firm`);
  }
  const page = SIGN_IN_PAGES[role];
  if (values.url) {
    if (page === undefined) {
      throw new UsageError(
        `--url has no sign-in page for role ${role} (superuser and operator: /admin, user: /enroll)`,
      );
    }
    if (role === 'user' && values.sub === undefined) {
      throw new UsageError('a user sign-in link needs --sub, the user id');
    }
    // The pages serve one firm: an operator's link without one opens a page that refuses it.
    if (values.firm === undefined) {
      throw new UsageError(`a sign-in link needs --firm, the firm whose page to open`);
    }
  }
  const sub = values.sub ?? `dev-${role}`;
  if (!isValidId(sub)) throw new UsageError('--sub is not a valid id');
  const ttlText = values.ttl ?? String(values.url ? URL_TTL_SECONDS : DEFAULT_TTL_SECONDS);
  const ttl = Number(ttlText);
  if (!/^\d+$/.test(ttlText) || !Number.isSafeInteger(ttl) || ttl <= 0) {
    throw new UsageError('--ttl must be a whole number of seconds');
  }

  const config = cliConfiguration();
  if (config.jwt.algorithm !== 'HS256') {
    throw new UsageError('tokens can only be minted here for HS256 (MFA_JWT_SECRET)');
  }
  const claims: Record<string, string> = { role };
  if (values.firm !== undefined) claims.firm = values.firm;
  const token = jwt.sign(claims, config.jwt.secret, {
    algorithm: 'HS256',
    subject: sub,
    expiresIn: ttl,
  });
  // The fragment never reaches a server log: the page reads it and forgets it.
  const line = values.url ? `${baseUrl(config)}${page}#token=${token}` : token;
  process.stdout.write(`${line}\n`);
  return 0;
}

/**
 * Where the service's pages are reached: WEBAUTHN_ORIGIN when set (the
 * origin security keys are bound to), else the address it listens on, with
 * a loopback or any-address host written `localhost` so that the link's
 * origin is WebAuthn's default one (http://localhost:3000).
 */
function baseUrl(config: AppConfig): string {
  if (process.env.WEBAUTHN_ORIGIN !== undefined) return config.webauthn.origin;
  const local = ['127.0.0.1', '0.0.0.0', '::', '::1'].includes(config.host);
  const host = local ? 'localhost' : config.host.includes(':') ? `[${config.host}]` : config.host;
  return new URL(`http://${host}:${config.port}`).origin;
}

runCli('token', main);
