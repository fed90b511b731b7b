import { rmSync } from 'node:fs';
import { createServer, Server } from 'node:net';
import { TEST_JWT_SECRET, TEST_MASTER_KEY, tempDir } from '../support/harness';
import { requireBuild, spawnService, startExpectingRefusal } from '../support/processes';

/*
 * A start whose address cannot be had (docs/configuration.md): one line on
 * stderr naming the port and the variable to change, exit 1, no stack trace,
 * and nothing before it that claims the service started. A start that does
 * listen says so once, when it listens.
 */

describe('a start on an address that cannot be had', () => {
  let dir: string;
  let holder: Server;
  let port: number;

  beforeAll(async () => {
    requireBuild();
    // Another program holds the port.
    holder = createServer();
    await new Promise<void>((resolve, reject) => {
      holder.once('error', reject);
      holder.listen(0, '127.0.0.1', () => resolve());
    });
    port = (holder.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((resolve) => holder.close(() => resolve())));
  beforeEach(() => (dir = tempDir('mfa-port-')));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const start = (env: Record<string, string>) =>
    startExpectingRefusal({
      PATH: process.env.PATH,
      DATA_DIR: dir,
      MFA_JWT_SECRET: TEST_JWT_SECRET,
      MFA_MASTER_KEY: TEST_MASTER_KEY,
      NO_COLOR: '1',
      ...env,
    });

  const expectOneLine = (result: { code: number | null; stdout: string; stderr: string }) => {
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).not.toMatch(/\n\s+at .+:\d+/);
    expect(result.stdout + result.stderr).not.toMatch(/successfully started|listening on/i);
  };

  it('a port in use: one line naming the port and PORT, exit 1, and no "started" before it', async () => {
    const result = await start({ PORT: String(port), HOST: '127.0.0.1' });
    expectOneLine(result);
    expect(result.stderr.trim()).toBe(
      `Start failed: port ${port} on 127.0.0.1 is already in use (PORT=${port}, HOST=127.0.0.1): ` +
        'stop what listens there or set PORT to a free port',
    );
  });

  it('a HOST that is no address of this machine: one line naming HOST, exit 1', async () => {
    // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never an address of this machine.
    const result = await start({ PORT: '0', HOST: '192.0.2.1' });
    expectOneLine(result);
    expect(result.stderr.trim()).toMatch(
      /^Start failed: HOST=192\.0\.2\.1 is not an address of this machine: set HOST/,
    );
  });

  it('a start that listens says so once, when it listens, and not before', async () => {
    const service = await spawnService(dir);
    try {
      const output = service.output();
      expect(output.match(/listening on/g)).toHaveLength(1);
      expect(output).not.toMatch(/successfully started/i);
    } finally {
      await service.stop();
    }
  });
});
