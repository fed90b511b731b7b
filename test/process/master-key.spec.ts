import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { Api, TEST_JWT_SECRET, tempDir } from '../support/harness';
import { activeFirm, enrollTotp, host, mfaPath, oathtool, registerUser } from '../support/mfa';
import {
  requireBuild,
  ServiceProcess,
  spawnService,
  startExpectingRefusal,
} from '../support/processes';

/*
 * Issue 11 item 16: the master key wraps every user's data key. A process
 * started with a key that cannot open them must not start (it would answer
 * 500 to every TOTP check); MFA_MASTER_KEY_PREVIOUS rotates to a new key.
 * Spawned processes on one data folder, TOTP codes from oathtool.
 */
describe('the master key at start', () => {
  let dir: string;
  const running: ServiceProcess[] = [];
  beforeAll(() => requireBuild());
  beforeEach(() => (dir = tempDir('mfa-master-key-')));
  afterEach(async () => {
    await Promise.all(running.splice(0).map((service) => service.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  const keyA = randomBytes(32).toString('hex');
  const keyB = randomBytes(32).toString('base64');
  const firmId = 'acme';

  async function start(env: Record<string, string>): Promise<ServiceProcess> {
    const service = await spawnService(dir, env);
    running.push(service);
    return service;
  }

  async function stop(service: ServiceProcess): Promise<void> {
    running.splice(running.indexOf(service), 1);
    expect([0, 'SIGTERM']).toContain(await service.stop());
  }

  /** A start that should fail, on this data folder. */
  const refusedStart = (env: Record<string, string>) =>
    startExpectingRefusal({
      PATH: process.env.PATH,
      DATA_DIR: dir,
      PORT: '0',
      NO_COLOR: '1',
      MFA_JWT_SECRET: TEST_JWT_SECRET,
      ...env,
    });

  const verifyTotp = (api: Api, userId: string, code: string) =>
    api.post(`${mfaPath(firmId, userId)}/totp/verify`, host, { code });

  function expectOneLineNamingTheKey(result: {
    code: number | null;
    stdout: string;
    stderr: string;
  }) {
    expect(result.code).not.toBe(0);
    expect(result.stdout + result.stderr).not.toMatch(/listening on/);
    expect(result.stderr).toMatch(/^Configuration error: MFA_MASTER_KEY: /);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).not.toMatch(/\n\s+at .+:\d+/);
  }

  it('refuses a key that cannot open the stored keys, rotates with MFA_MASTER_KEY_PREVIOUS, then runs on the new key alone', async () => {
    // Two users enrolled under key A.
    const first = await start({ MFA_MASTER_KEY: keyA });
    const api = new Api(first.url);
    await activeFirm(api, firmId, 5);
    await registerUser(api, firmId, 'ann');
    await registerUser(api, firmId, 'bob');
    const ann = await enrollTotp(api, firmId, 'ann');
    const bob = await enrollTotp(api, firmId, 'bob');
    await stop(first);

    // Key B alone: it opens nothing that is stored, so the service does not start.
    expectOneLineNamingTheKey(await refusedStart({ MFA_MASTER_KEY: keyB }));

    // B with A as the previous key: two instances start at once, both re-wrap, both serve.
    const [one, two] = await Promise.all([
      start({ MFA_MASTER_KEY: keyB, MFA_MASTER_KEY_PREVIOUS: keyA }),
      start({ MFA_MASTER_KEY: keyB, MFA_MASTER_KEY_PREVIOUS: keyA }),
    ]);
    // Each key was re-wrapped once, by one of the two: the other found it done.
    const rewrapped = [one, two].map((service) => {
      const match = /(\d+) data keys re-wrapped from MFA_MASTER_KEY_PREVIOUS/.exec(
        service.output(),
      );
      if (!match) throw new Error(`No re-wrap report in:\n${service.output()}`);
      return Number(match[1]);
    });
    expect(rewrapped.sort()).toEqual([0, 2]);
    const verified = await verifyTotp(new Api(two.url), 'ann', oathtool(ann.secret, new Date(), 1));
    expect(verified.status).toBe(200);
    expect(verified.body).toMatchObject({ verified: true });
    const wrong = await verifyTotp(new Api(one.url), 'bob', '000000');
    expect(wrong.status).toBe(401);
    await Promise.all([stop(one), stop(two)]);

    // B alone now: the previous key can go.
    const rotated = await start({ MFA_MASTER_KEY: keyB });
    const after = await verifyTotp(
      new Api(rotated.url),
      'bob',
      oathtool(bob.secret, new Date(), 1),
    );
    expect(after.status).toBe(200);
    expect(after.body).toMatchObject({ verified: true });
    await stop(rotated);

    // And the old key no longer opens them.
    expectOneLineNamingTheKey(await refusedStart({ MFA_MASTER_KEY: keyA }));
    // Seven process starts on two shared cores.
  }, 120_000);

  it('refuses a previous key equal to the current one, naming MFA_MASTER_KEY_PREVIOUS', async () => {
    const result = await refusedStart({ MFA_MASTER_KEY: keyA, MFA_MASTER_KEY_PREVIOUS: keyA });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^Configuration error: MFA_MASTER_KEY_PREVIOUS: is the same key as MFA_MASTER_KEY\n$/,
    );
  });

  it('a fresh data folder starts with any key', async () => {
    const service = await start({ MFA_MASTER_KEY: randomBytes(32).toString('hex') });
    const api = new Api(service.url);
    await activeFirm(api, firmId, 1);
    await registerUser(api, firmId, 'cid');
    const cid = await enrollTotp(api, firmId, 'cid');
    const verified = await verifyTotp(api, 'cid', oathtool(cid.secret, new Date(), 1));
    expect(verified.status).toBe(200);
  });
});
