import { rmSync } from 'node:fs';
import { Api, ApiResponse, readLog, tempDir, token } from '../support/harness';
import { requireBuild, ServiceProcess, spawnService } from '../support/processes';

/*
 * Issue 11 item 5: idempotency records live in the deployment's shared store,
 * so a retry that reaches another instance is recognised, and a key whose
 * command is still running in one instance is not run again by another. Two
 * built services on one data folder, as two replicas of the embedded
 * deployment run; with MONGODB_URL set, the same again with MongoDB holding
 * the keys.
 */
const mongodbUrl = process.env.MONGODB_URL;
const deployments: Array<[string, Record<string, string>]> = [
  ['the keys in DATA_DIR/state.sqlite', {}],
  ...(mongodbUrl
    ? [['the keys in MongoDB', { MONGODB_URL: mongodbUrl }] as [string, Record<string, string>]]
    : []),
];
if (!mongodbUrl) {
  console.warn(
    'Idempotency across instances on MongoDB SKIPPED: MONGODB_URL is not set (no MongoDB server on this machine).',
  );
}

const host = token('host');
const profile = (name: string) => ({ role: 'case-manager', name, email: 'keyed@firm.example' });
const ran = (res: ApiResponse) =>
  res.status === 200 && res.headers.get('idempotent-replayed') === null;

describe.each(deployments)('Idempotency-Key across two instances, %s', (_name, env) => {
  let dir: string;
  let services: ServiceProcess[] = [];
  let apis: Api[];

  beforeAll(() => requireBuild());
  beforeEach(async () => {
    dir = tempDir('mfa-idem-two-');
    services = [await spawnService(dir, env), await spawnService(dir, env)];
    apis = services.map((s) => new Api(s.url));
  });
  afterEach(async () => {
    await Promise.all(services.map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('a retry sent to the other instance gets the first answer and appends nothing', async () => {
    const key = { 'idempotency-key': 'sync-user-7' };
    const first = await apis[0].put('/v1/firms/acme/users/u7', host, profile('First'), key);
    expect(first.status).toBe(200);
    const before = (await readLog(dir)).length;

    const retry = await apis[1].put('/v1/firms/acme/users/u7', host, profile('First'), key);
    expect(retry.status).toBe(200);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(retry.body).toEqual(first.body);
    expect(await readLog(dir)).toHaveLength(before);

    // The same key for another request, on the other instance: still that key's.
    const reused = await apis[1].put('/v1/firms/acme/users/u7', host, profile('Other'), key);
    expect(reused.status).toBe(422);
    expect(reused.body.type).toBe('/problems/idempotency-key-reused');
    expect(await readLog(dir)).toHaveLength(before);
  });

  it('a key whose command runs in one instance is not run by the other: each keyed command runs once', async () => {
    const keys = Array.from({ length: 12 }, (_, i) => `burst-${i}`);
    const answers = await Promise.all(
      keys.map(async (key) => {
        const sent = await Promise.all(
          Array.from({ length: 6 }, (_, i) =>
            apis[i % 2].put(`/v1/firms/acme/users/${key}`, host, profile(key), {
              'idempotency-key': key,
            }),
          ),
        );
        return { key, sent };
      }),
    );
    for (const { key, sent } of answers) {
      // Every answer is the first answer, a replay of it, or "still running".
      for (const res of sent) expect([200, 409]).toContain(res.status);
      for (const res of sent.filter((r) => r.status === 409)) {
        expect(res.body.type).toBe('/problems/idempotency-request-in-progress');
        expect(res.headers.get('retry-after')).toBe('1');
      }
      expect({ key, ran: sent.filter(ran).length }).toEqual({ key, ran: 1 });
    }
    const log = await readLog(dir);
    for (const key of keys) {
      expect(log.filter((e) => e.streamId === `user-acme/${key}`)).toHaveLength(1);
    }
  });
});
