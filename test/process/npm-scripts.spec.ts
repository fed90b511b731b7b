import { execFileSync, spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import jwt, { JwtPayload } from 'jsonwebtoken';
import { tempDir } from '../support/harness';
import { ROOT } from '../support/processes';

/*
 * The package.json scripts as a newcomer types them, run with npm on a copy
 * of this repository (its tracked and new files, no dist; node_modules is a
 * link to this one's): the first `npm run -s token` builds and prints the
 * token alone on stdout; `npm start` then starts without building; a changed
 * source is built before the next command, and only then; and the three
 * command-line tools answer --help and mistakes through npm as they do
 * alone. Each build here is the real `nest build` (a minute on a busy
 * machine); test/process/build-if-stale.spec.ts covers the cases of what
 * counts as a change.
 */

const BUILD_TIMEOUT_MS = 600_000;

/** Tracked and not-ignored files of this repository, as a fresh clone (plus work not committed yet) has them. */
function copyRepository(): string {
  const lockStamp = join(ROOT, 'node_modules', '.installed-from-lock');
  if (
    !existsSync(lockStamp) ||
    !readFileSync(lockStamp).equals(readFileSync(join(ROOT, 'package-lock.json')))
  ) {
    // The copy links node_modules: its ensure-deps.sh must find it installed, or its npm ci would replace ours.
    throw new Error(
      'node_modules is not installed from package-lock.json: run bash scripts/ensure-deps.sh first',
    );
  }
  const copy = tempDir('mfa-npm-scripts-');
  const files = execFileSync(
    'git',
    ['ls-files', '-z', '--cached', '--others', '--exclude-standard'],
    {
      cwd: ROOT,
      encoding: 'utf8',
    },
  )
    .split('\0')
    // Files only: a deleted tracked file is gone, a linked node_modules is not copied.
    .filter(
      (file) => file !== '' && lstatSync(join(ROOT, file), { throwIfNoEntry: false })?.isFile(),
    );
  for (const file of files) {
    mkdirSync(dirname(join(copy, file)), { recursive: true });
    copyFileSync(join(ROOT, file), join(copy, file));
  }
  symlinkSync(join(ROOT, 'node_modules'), join(copy, 'node_modules'), 'dir');
  return copy;
}

describe('the npm scripts on a fresh copy', () => {
  let copy: string;
  let dataDir: string;

  beforeAll(() => {
    copy = copyRepository();
    dataDir = tempDir('mfa-npm-scripts-data-');
  });
  afterAll(() => {
    rmSync(copy, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  });

  const environment = (env: Record<string, string>) => ({
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? copy,
    DATA_DIR: dataDir,
    NO_COLOR: '1',
    npm_config_update_notifier: 'false',
    ...env,
  });

  /** `npm ARGS` in the copy, to completion. */
  const npm = (args: string[], env: Record<string, string> = {}) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn('npm', args, {
        cwd: copy,
        env: environment(env),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.once('close', (code) => resolve({ code, stdout, stderr }));
    });
  const builtMain = () => join(copy, 'dist', 'src', 'main.js');

  it(
    'the first `npm run -s token` builds, and its stdout holds the token alone',
    async () => {
      expect(existsSync(join(copy, 'dist'))).toBe(false);
      const result = await npm(['run', '-s', 'token', '--', '--role', 'host']);
      expect(result.code).toBe(0);
      expect(result.stderr).toContain('Building the service with nest build');
      expect(result.stderr).toMatch(/Built in \d+\.\d s\./);
      // What `SU=$(npm run -s token -- ...)` captures: one JWT, signed with DATA_DIR's secret.
      expect(result.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
      const secret = readFileSync(join(dataDir, 'secrets', 'jwt-secret'), 'utf8').trim();
      const claims = jwt.verify(result.stdout.trim(), secret, {
        algorithms: ['HS256'],
      }) as JwtPayload;
      expect(claims).toMatchObject({ role: 'host', sub: 'dev-host' });
    },
    BUILD_TIMEOUT_MS,
  );

  it(
    '`npm start` then serves without building again, and stopping npm stops the service',
    async () => {
      const builtAt = statSync(builtMain()).mtimeMs;
      // Its own process group: should the service outlive npm, the test still stops it.
      const child = spawn('npm', ['start'], {
        cwd: copy,
        env: environment({ PORT: '0', HOST: '127.0.0.1' }),
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      let output = '';
      const closed = new Promise<number | null>((resolve) => child.once('close', resolve));
      const alive = (pid: number) => {
        try {
          process.kill(pid, 0);
          return true;
        } catch {
          return false;
        }
      };
      try {
        const url = await new Promise<string>((resolve, reject) => {
          const onData = (chunk: Buffer) => {
            output += chunk.toString();
            const match = /listening on (http:\/\/\S+)/.exec(output);
            if (match) resolve(match[1]);
          };
          child.stdout.on('data', onData);
          child.stderr.on('data', onData);
          void closed.then((code) => reject(new Error(`npm start ended (${code}):\n${output}`)));
        });
        expect((await fetch(`${url}/health`)).status).toBe(200);
        expect(output).not.toContain('Building the service');
        expect(statSync(builtMain()).mtimeMs).toBe(builtAt);

        // A process manager stops npm, not its children: the service (exec'd by
        // npm's shell, so npm's own child) gets the signal and ends too.
        const servicePid = Number(/\[Nest\] (\d+)/.exec(output)![1]);
        expect(servicePid).not.toBe(child.pid);
        child.kill('SIGTERM');
        await closed;
        const deadline = Date.now() + 15_000;
        while (alive(servicePid) && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        expect(alive(servicePid)).toBe(false);
      } finally {
        if (alive(-child.pid!)) process.kill(-child.pid!, 'SIGKILL');
      }
    },
    BUILD_TIMEOUT_MS,
  );

  it(
    'a changed source is built before the next command, even with an older time, and only once',
    async () => {
      const source = join(copy, 'src', 'cli', 'token.ts');
      const text = readFileSync(source, 'utf8');
      expect(text).toContain('Mints a development token');
      writeFileSync(
        source,
        text.replace('Mints a development token', 'Mints an edited development token'),
      );
      // With a time older than the build, as `cp -p` or `tar x` of another version leaves it.
      const yearAgo = new Date(Date.now() - 365 * 24 * 3600 * 1000);
      utimesSync(source, yearAgo, yearAgo);

      const edited = await npm(['run', '-s', 'token', '--', '--help']);
      expect(edited.code).toBe(0);
      expect(edited.stdout).toMatch(/^Mints an edited development token/);
      expect(edited.stderr).toMatch(
        /Building the service with nest build \(the sources changed since the last build\)/,
      );

      const again = await npm(['run', '-s', 'token', '--', '--help']);
      expect(again).toEqual({ code: 0, stdout: edited.stdout, stderr: '' });
    },
    BUILD_TIMEOUT_MS,
  );

  it('token, projections and audit through npm: --help exits 0, a mistake is one line on stderr and exit 2', async () => {
    const helps: Array<[string, RegExp]> = [
      ['token', /usage: npm run -s token -- --role ROLE/],
      ['projections', /usage: npm run projections -- COMMAND/],
      ['audit', /usage: npm run audit -- COMMAND/],
    ];
    for (const [tool, usage] of helps) {
      const result = await npm(['run', '-s', tool, '--', '--help']);
      expect({ tool, code: result.code, stderr: result.stderr }).toEqual({
        tool,
        code: 0,
        stderr: '',
      });
      expect(result.stdout).toMatch(usage);
    }

    // Each kind once per tool: the tools' own specs (token-cli, bad-events, cli-audit) hold the rest.
    const mistakes: Array<[string, string[], RegExp, Record<string, string>?]> = [
      ['token', ['--bogus'], /^token: Unknown option '--bogus'.* \(npm run token -- --help\)$/],
      ['token', ['--role'], /^token: Option '--role <value>' argument missing/],
      ['token', ['--role', 'host'], /^token: configuration error: PORT: /, { PORT: 'eighty' }],
      [
        'projections',
        ['status', '--verbose'],
        /^projections: Unknown option '--verbose' \(npm run projections -- --help\)$/,
      ],
      ['projections', ['skip'], /^projections: wrong number of arguments for skip/],
      ['projections', ['status'], /^Configuration error: PORT: /, { PORT: 'eighty' }],
      ['audit', ['--bogus'], /^audit: Unknown option '--bogus' \(npm run audit -- --help\)$/],
      ['audit', ['export', '--firm'], /^audit: Option '--firm <value>' argument missing/],
      [
        'audit',
        ['export', '--firm', 'acme'],
        /^audit: configuration error: PORT: /,
        { PORT: 'eighty' },
      ],
    ];
    for (const [tool, args, message, env] of mistakes) {
      const result = await npm(['run', '-s', tool, '--', ...args], env);
      expect({ tool, args, code: result.code, stdout: result.stdout }).toEqual({
        tool,
        args,
        code: 2,
        stdout: '',
      });
      const lines = result.stderr.trimEnd().split('\n');
      expect({ tool, args, lines: lines.length }).toEqual({ tool, args, lines: 1 });
      expect(lines[0]).toMatch(message);
      expect(lines[0]).not.toMatch(/\bat .+:\d+/);
    }
    // Twelve runs of npm, each starting node four times; a minute or two on a busy machine.
  }, 300_000);
});
