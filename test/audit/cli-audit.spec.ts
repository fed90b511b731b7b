import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  RunningService,
  startService,
  tempDir,
  TEST_JWT_SECRET,
  TEST_MASTER_KEY,
  token,
} from '../support/harness';
import { activeFirm, enrollTotp, registerUser } from '../support/mfa';
import { requireBuild, ROOT, run } from '../support/processes';
import { settled } from './audit-fixtures';

/*
 * `npm run audit` (src/cli/audit.ts), the built script run as a child process
 * on the data folder of a stopped service: export and state read the stores
 * as the service left them and answer what its endpoints answered; verify
 * --file needs nothing but the file.
 */

const CLI = join(ROOT, 'dist', 'src', 'cli', 'audit.js');

describe('npm run audit', () => {
  let dataDir: string;
  let work: string;
  let httpExport: string;
  let httpFiltered: string;
  let httpState: unknown;
  let asOf: string;

  const env = () => ({
    PATH: process.env.PATH ?? '',
    DATA_DIR: dataDir,
    MFA_JWT_SECRET: TEST_JWT_SECRET,
    MFA_MASTER_KEY: TEST_MASTER_KEY,
    NO_COLOR: '1',
  });
  const audit = (args: string[], environment: Record<string, string> = env()) =>
    run(process.execPath, [CLI, ...args], environment);
  const eventLines = (text: string) => text.trimEnd().split('\n').slice(0, -1);
  const trailerOf = (text: string) => JSON.parse(text.trimEnd().split('\n').pop()!).trailer;

  beforeAll(async () => {
    requireBuild();
    dataDir = tempDir('mfa-audit-cli-');
    work = mkdtempSync(join(tmpdir(), 'mfa-audit-files-'));
    let service: RunningService | undefined;
    try {
      service = await startService({ dataDir });
      await activeFirm(service.api, 'acme', 5);
      await activeFirm(service.api, 'acme-2', 5);
      await registerUser(service.api, 'acme', 'ann');
      await registerUser(service.api, 'acme-2', 'ann');
      await enrollTotp(service.api, 'acme', 'ann');
      await settled(service);
      const auditor = token('auditor', { firm: 'acme' });
      // Read as text: the harness' client would parse the NDJSON as one JSON document.
      const ndjson = async (path: string) =>
        (
          await fetch(`${service!.api.baseUrl}${path}`, {
            headers: { authorization: `Bearer ${auditor}` },
          })
        ).text();
      httpExport = await ndjson('/v1/audit/firms/acme/events');
      httpFiltered = await ndjson('/v1/audit/firms/acme/events?type=FactorConfirmed&userId=ann');
      asOf = new Date().toISOString();
      httpState = (await service.api.get(`/v1/audit/firms/acme/state?asOf=${asOf}`, auditor)).body;
    } finally {
      await service?.stop();
    }
  });
  afterAll(() => {
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });

  it('export writes what the endpoint streams, and verify --file accepts it, with nothing but the file', async () => {
    const exported = await audit(['export', '--firm', 'acme']);
    expect(exported).toMatchObject({ code: 0, stderr: '' });
    expect(eventLines(exported.stdout)).toEqual(eventLines(httpExport));
    expect(eventLines(exported.stdout).length).toBeGreaterThan(5);
    const { exportedAt: _a, digest: _d, ...trailer } = trailerOf(exported.stdout);
    const { exportedAt: _b, digest: _e, ...httpTrailer } = trailerOf(httpExport);
    expect(trailer).toEqual(httpTrailer);

    const file = join(work, 'acme.ndjson');
    writeFileSync(file, exported.stdout);
    // No DATA_DIR, no secrets, no store: the file alone.
    const verified = await audit(['verify', '--file', file], { PATH: process.env.PATH ?? '' });
    expect(verified.code).toBe(0);
    expect(JSON.parse(verified.stdout)).toEqual({
      ok: true,
      eventsChecked: eventLines(exported.stdout).length,
    });

    // As `npm run audit -- export … > file` leaves it: npm's own lines first.
    const banner = `\n> mfa-service@0.1.0 audit\n> node dist/src/cli/audit.js export --firm acme\n\n`;
    writeFileSync(file, banner + exported.stdout);
    expect((await audit(['verify', '--file', file])).code).toBe(0);

    const changed = readFileSync(file, 'utf8').replace('"ann"', '"anm"');
    writeFileSync(file, changed);
    const broken = await audit(['verify', '--file', file]);
    expect(broken.code).toBe(1);
    expect(JSON.parse(broken.stdout)).toMatchObject({ ok: false });
  });

  it('export takes the filters of the endpoint', async () => {
    const exported = await audit([
      'export',
      '--firm',
      'acme',
      '--type',
      'FactorConfirmed',
      '--user',
      'ann',
    ]);
    expect(exported.code).toBe(0);
    expect(eventLines(exported.stdout)).toEqual(eventLines(httpFiltered));
    expect(eventLines(exported.stdout)).toHaveLength(1);
    const window = await audit(['export', '--firm', 'acme', '--from', '2000-01-01', '--to', asOf]);
    expect(eventLines(window.stdout)).toEqual(eventLines(httpExport));
    expect(trailerOf(window.stdout).filters).toEqual({
      from: '2000-01-01T00:00:00.000Z',
      to: asOf,
      types: null,
      userId: null,
    });
  });

  it('state answers what the endpoint answered for the same moment', async () => {
    const state = await audit(['state', '--firm', 'acme', '--as-of', asOf]);
    expect(state).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(state.stdout)).toEqual(httpState);
    expect(JSON.parse(state.stdout).enrolledUsers).toHaveLength(1);
  });

  it('--help explains the commands; mistakes are one line on stderr and exit 2', async () => {
    const help = await audit(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/usage: npm run audit -- COMMAND/);
    for (const command of ['export --firm', 'state --firm', 'verify --file']) {
      expect(help.stdout).toContain(command);
    }
    const mistakes: Array<[string[], RegExp]> = [
      [[], /a command is required/],
      [['import'], /unknown command import/],
      [['export'], /export needs --firm/],
      [['export', '--firm', 'a b'], /--firm must be/],
      [['export', '--firm', 'acme', '--type', 'NoSuchEvent'], /--type .*unknown: "NoSuchEvent"/],
      [['export', '--firm', 'acme', '--from', 'yesterday'], /--from must be an ISO 8601/],
      [['export', '--firm', 'acme', '--as-of', asOf], /export takes no --as-of/],
      [['state', '--firm', 'acme'], /state needs --as-of/],
      [['state', '--firm', 'acme', '--as-of', '2999-01-01T00:00:00Z'], /must not be in the future/],
      [['verify'], /verify needs --firm or --file/],
      [['verify', '--file', join(work, 'missing.ndjson')], /cannot read .*missing\.ndjson/],
      [['verify', '--firm', 'acme', '--file', 'x.ndjson'], /not both/],
      [['verify', '--file', 'x', '--bogus'], /Unknown option '--bogus'/],
    ];
    for (const [args, message] of mistakes) {
      const result = await audit(args);
      expect({ args, code: result.code, stdout: result.stdout }).toEqual({
        args,
        code: 2,
        stdout: '',
      });
      expect(result.stderr).toMatch(message);
      expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
    }
  });
});
