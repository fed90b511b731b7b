import Database from 'better-sqlite3';
import { cpSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { firmOfStream } from '../../src/shared/ids';
import {
  ApiResponse,
  readLog,
  RunningService,
  startService,
  tempDir,
  TEST_JWT_SECRET,
  TEST_MASTER_KEY,
  TestClock,
  token,
} from '../support/harness';
import {
  activeFirm,
  enrollTotp,
  expectOk,
  host,
  mfaPath,
  registerUser,
  superuserOf,
} from '../support/mfa';
import { requireBuild, ROOT, run } from '../support/processes';
import { settled } from './settle';

/*
 * The online verification of a firm's chains (API.md Audit, ADR 0017):
 * `GET /v1/audit/firms/{firmId}/verify` and `npm run audit -- verify --firm`
 * answer the same `{ ok, eventsChecked, firstBrokenPosition?, reason? }`
 * over the stored history, for an untouched data folder and for a copy whose
 * `events.sqlite` was edited. Only auditors reach the endpoint.
 */

const CLI = join(ROOT, 'dist', 'src', 'cli', 'audit.js');
const auditorOf = (firmId: string) => token('auditor', { firm: firmId, sub: 'auditor-1' });

describe('verifying a firm’s chains online', () => {
  let dataDir: string;
  let tampered: string;
  let editedPosition: number;
  let firmEvents: number;

  const cli = (dir: string, args: string[]) =>
    run(process.execPath, [CLI, 'verify', ...args], {
      PATH: process.env.PATH ?? '',
      DATA_DIR: dir,
      MFA_JWT_SECRET: TEST_JWT_SECRET,
      MFA_MASTER_KEY: TEST_MASTER_KEY,
      NO_COLOR: '1',
    });

  beforeAll(async () => {
    requireBuild();
    dataDir = tempDir('mfa-verify-');
    const clock = new TestClock();
    const service = await startService({ dataDir, clock });
    try {
      for (const firmId of ['acme', 'acme-2']) {
        await activeFirm(service.api, firmId, 5);
        await registerUser(service.api, firmId, 'ann');
        await registerUser(service.api, firmId, 'bob');
        await enrollTotp(service.api, firmId, 'ann', clock.now());
      }
      expectOk(
        await service.api.post(`${mfaPath('acme', 'ann')}/reset`, superuserOf('acme'), {
          reason: 'Lost phone',
        }),
      );
      await settled(service);
    } finally {
      await service.stop();
    }
    const acme = (await readLog(dataDir)).filter((e) => firmOfStream(e.streamId) === 'acme');
    firmEvents = acme.length;
    // Edit the data of acme's user registration of bob, as someone with the file could.
    const target = acme.find((e) => e.type === 'UserRegistered' && e.data.userId === 'bob')!;
    editedPosition = Number(target.position);
    tampered = tempDir('mfa-verify-tampered-');
    cpSync(dataDir, tampered, { recursive: true });
    const db = new Database(join(tampered, 'events.sqlite'));
    try {
      const { data } = db
        .prepare('SELECT data FROM events WHERE position = ?')
        .get(editedPosition) as {
        data: string;
      };
      const changed = db
        .prepare('UPDATE events SET data = ? WHERE position = ?')
        .run(data.replace('"bob"', '"eve"'), editedPosition);
      expect(changed.changes).toBe(1);
    } finally {
      db.close();
    }
  });

  afterAll(() => {
    for (const dir of [dataDir, tampered]) rmSync(dir, { recursive: true, force: true });
  });

  describe('over HTTP', () => {
    let service: RunningService;
    afterEach(() => service?.stop());

    it('an untouched history verifies, every event of the firm checked', async () => {
      service = await startService({ dataDir });
      const answer = await service.api.get('/v1/audit/firms/acme/verify', auditorOf('acme'));
      expectOk(answer);
      // Its own start may append (anchors); what was there before is all checked.
      expect(answer.body.ok).toBe(true);
      expect(answer.body.eventsChecked).toBeGreaterThanOrEqual(firmEvents);
      expect(answer.body.firstBrokenPosition).toBeUndefined();
      expect(answer.body.unchainedBefore).toBeUndefined();
    });

    it('an edited event is named at its position', async () => {
      service = await startService({ dataDir: tampered });
      const answer = await service.api.get('/v1/audit/firms/acme/verify', auditorOf('acme'));
      expectOk(answer);
      expect(answer.body).toMatchObject({
        ok: false,
        firstBrokenPosition: String(editedPosition),
      });
      expect(answer.body.reason).toMatch(/^[a-z-]+: /);
      // The other firm's history is its own, and intact.
      const other = await service.api.get('/v1/audit/firms/acme-2/verify', auditorOf('acme-2'));
      expect(other.body.ok).toBe(true);
    });

    it('only an auditor of the firm, or of every firm, may ask', async () => {
      service = await startService({ dataDir });
      const ask = (bearer: string, firmId = 'acme'): Promise<ApiResponse> =>
        service.api.get(`/v1/audit/firms/${firmId}/verify`, bearer);
      for (const bearer of [
        token('operator'),
        superuserOf('acme'),
        host,
        token('user', { firm: 'acme', sub: 'ann' }),
        auditorOf('acme-2'),
      ]) {
        const refused = await ask(bearer);
        expect(refused.status).toBe(403);
        expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      }
      const anonymous = await fetch(`${service.api.baseUrl}/v1/audit/firms/acme/verify`);
      expect(anonymous.status).toBe(401);
      expect((await ask(token('auditor'), 'acme-2')).status).toBe(200);
    });
  });

  describe('npm run audit -- verify --firm', () => {
    it('answers ok on the untouched folder and exits 0', async () => {
      const result = await cli(dataDir, ['--firm', 'acme']);
      expect(result.code).toBe(0);
      const answer = JSON.parse(result.stdout);
      expect(answer.ok).toBe(true);
      expect(answer.eventsChecked).toBeGreaterThanOrEqual(firmEvents);
    });

    it('names the edited event and exits 1', async () => {
      const result = await cli(tampered, ['--firm', 'acme']);
      expect(result.code).toBe(1);
      expect(JSON.parse(result.stdout)).toMatchObject({
        ok: false,
        firstBrokenPosition: String(editedPosition),
      });
    });

    it('refuses --firm with --file, and a bad firm id, with exit 2', async () => {
      expect((await cli(dataDir, ['--firm', 'acme', '--file', 'x.ndjson'])).code).toBe(2);
      expect((await cli(dataDir, ['--firm', 'a b'])).code).toBe(2);
    });
  });
});
