import jwt, { JwtPayload } from 'jsonwebtoken';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../support/harness';
import { requireBuild, ROOT, run } from '../support/processes';

/*
 * `npm run token -- --url` (src/cli/token.ts), the built script run as a
 * child process on a fresh DATA_DIR: it signs with the development secret it
 * generates there, and prints a sign-in link for the role's page with the
 * token in the fragment.
 */

const CLI = join(ROOT, 'dist', 'src', 'cli', 'token.js');

describe('npm run token', () => {
  let dataDir: string;

  beforeAll(() => requireBuild());
  beforeEach(() => (dataDir = tempDir('mfa-token-cli-')));
  afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

  const token = (args: string[], env: Record<string, string> = {}) =>
    run(process.execPath, [CLI, ...args], { PATH: process.env.PATH, DATA_DIR: dataDir, ...env });
  /** The claims of a token signed with the secret the CLI keeps under DATA_DIR. */
  const verified = (signed: string) =>
    jwt.verify(signed, readFileSync(join(dataDir, 'secrets', 'jwt-secret'), 'utf8').trim(), {
      algorithms: ['HS256'],
    }) as JwtPayload;
  const linkOf = (stdout: string) => {
    const lines = stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    return new URL(lines[0]);
  };

  it('prints an /admin link for a superuser, a token of 15 minutes in its fragment', async () => {
    const before = Math.floor(Date.now() / 1000);
    const result = await token([
      '--role',
      'superuser',
      '--firm',
      'acme',
      '--sub',
      'alice',
      '--url',
    ]);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    const link = linkOf(result.stdout);
    expect(`${link.origin}${link.pathname}`).toBe('http://localhost:3000/admin');
    expect(link.search).toBe('');
    expect(link.hash).toMatch(/^#token=[\w-]+\.[\w-]+\.[\w-]+$/);
    const claims = verified(link.hash.slice('#token='.length));
    expect(claims).toMatchObject({ role: 'superuser', firm: 'acme', sub: 'alice' });
    const after = Math.floor(Date.now() / 1000);
    expect(claims.exp).toBeGreaterThanOrEqual(before + 900);
    expect(claims.exp).toBeLessThanOrEqual(after + 900);
  });

  it('prints an /admin link for an operator and an /enroll link for a user', async () => {
    const operator = await token(['--role', 'operator', '--firm', 'acme', '--url']);
    expect(operator.code).toBe(0);
    const admin = linkOf(operator.stdout);
    expect(admin.pathname).toBe('/admin');
    expect(verified(admin.hash.slice(7))).toMatchObject({ role: 'operator', sub: 'dev-operator' });

    const user = await token(['--role', 'user', '--firm', 'acme', '--sub', 'ann', '--url']);
    expect(user.code).toBe(0);
    const enroll = linkOf(user.stdout);
    expect(`${enroll.origin}${enroll.pathname}`).toBe('http://localhost:3000/enroll');
    const claims = verified(enroll.hash.slice(7));
    expect(claims).toMatchObject({ role: 'user', firm: 'acme', sub: 'ann' });
    expect(claims.exp! - claims.iat!).toBe(900);
  });

  it('takes --ttl, the configured address, and WEBAUTHN_ORIGIN when set', async () => {
    const long = await token(['--role', 'operator', '--firm', 'acme', '--url', '--ttl', '60'], {
      HOST: '0.0.0.0',
      PORT: '8080',
    });
    const link = linkOf(long.stdout);
    expect(link.origin).toBe('http://localhost:8080');
    const claims = verified(link.hash.slice(7));
    expect(claims.exp! - claims.iat!).toBe(60);

    const named = await token(['--role', 'operator', '--firm', 'acme', '--url'], {
      HOST: 'mfa.internal',
    });
    expect(linkOf(named.stdout).origin).toBe('http://mfa.internal:3000');

    const behindProxy = await token(['--role', 'operator', '--firm', 'acme', '--url'], {
      WEBAUTHN_ORIGIN: 'https://mfa.example/',
      PORT: '8080',
    });
    expect(`${linkOf(behindProxy.stdout).origin}${linkOf(behindProxy.stdout).pathname}`).toBe(
      'https://mfa.example/admin',
    );
  });

  it('still prints the bare token without --url, valid for an hour', async () => {
    const result = await token(['--role', 'host']);
    expect(result.code).toBe(0);
    const claims = verified(result.stdout.trim());
    expect(claims).toMatchObject({ role: 'host', sub: 'dev-host' });
    expect(claims.exp! - claims.iat!).toBe(3600);
  });

  it('prints its usage for --help, and one line, exit 2, for a mistake', async () => {
    const help = await token(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Mints a development token/);
    expect(help.stdout).toMatch(/--url/);
    expect(help.stderr).toBe('');

    const mistakes: Array<[string[], RegExp]> = [
      [['--role', 'host', '--url'], /no sign-in page for role host/],
      [['--role', 'auditor', '--url'], /no sign-in page for role auditor/],
      [['--role', 'user', '--firm', 'acme', '--url'], /needs --sub/],
      [['--role', 'user', '--sub', 'ann', '--url'], /needs --firm/],
      [['--role', 'superuser', '--url'], /needs --firm/],
      [['--role', 'operator', '--url'], /needs --firm/],
      [['--role', 'operator', '--firm', 'acme', '--url', '--ttl', '15m'], /--ttl/],
      [['--role', 'operator', '--bogus'], /bogus/],
      [['--role', 'operator', 'extra'], /extra/],
      [['--role'], /--role/],
      [['--role', 'king'], /--role must be one of/],
    ];
    // Eleven processes at once: one after another they took over 30 s on a loaded 2-core machine.
    const results = await Promise.all(mistakes.map(([args]) => token(args)));
    for (const [args, message] of mistakes) {
      const result = results.shift()!;
      expect([args, result.code]).toEqual([args, 2]);
      expect(result.stdout).toBe('');
      const lines = result.stderr.trimEnd().split('\n');
      expect([args, lines.length]).toEqual([args, 1]);
      expect(lines[0]).toMatch(/^token: /);
      expect(lines[0]).toMatch(message);
      expect(lines[0]).not.toMatch(/\bat .+:\d+/);
    }
    const badConfig = await token(['--role', 'operator', '--firm', 'acme', '--url'], {
      PORT: 'eighty',
    });
    expect(badConfig.code).toBe(2);
    expect(badConfig.stderr.trimEnd().split('\n')).toHaveLength(1);
    // Thirteen Node starts: about half a second each, several on a loaded machine.
  }, 90_000);
});
