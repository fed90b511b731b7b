import { execFile } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';

/*
 * The import boundaries of docs/architecture.md ("Where things live"): deciders,
 * decisions, projections and src/shared/ reach no framework, no adapter and
 * no I/O. These tests run the very step `npm run lint` and CI run
 * (`npm run lint:boundaries`), once on the real tree and once on a copy of it
 * with probe files that break (or keep) the rules.
 */

const REPO = join(__dirname, '..', '..');
const LINT_TIMEOUT_MS = 120_000;

interface Violation {
  severity: 'error' | 'warn' | 'info';
  rule: string;
  from: string;
  to: string;
}

interface LintRun {
  exitCode: number;
  output: string;
  violations: Violation[];
}

/** `npm run -s lint:boundaries` in `dir`: its exit code, its text and the violations it lists. */
function lintBoundaries(dir: string): Promise<LintRun> {
  return new Promise((resolve) => {
    execFile(
      'npm',
      ['run', '-s', 'lint:boundaries'],
      { cwd: dir, env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' } },
      (error, stdout, stderr) => {
        // eslint-disable-next-line no-control-regex
        const output = `${stdout}${stderr}`.replace(/\x1b\[[0-9;]*m/g, '');
        const violations: Violation[] = [];
        // dependency-cruiser's text report: `  error rule-name: from → to` (a
        // transitive or circular finding continues with its path on the next lines).
        for (const m of output.matchAll(/^\s*(error|warn|info) ([\w-]+): (\S+) →\s+(\S+)/gm)) {
          violations.push({
            severity: m[1] as Violation['severity'],
            rule: m[2],
            from: m[3],
            to: m[4],
          });
        }
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ exitCode: code, output, violations });
      },
    );
  });
}

/** The one source file under `root/src` with this base name; throws if there is none. */
function findSource(root: string, baseName: string): string {
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
      entry.isDirectory() ? walk(join(dir, entry.name)) : [join(dir, entry.name)],
    );
  const found = walk(join(root, 'src')).filter((file) => file.endsWith(`${sep}${baseName}`));
  if (found.length !== 1) {
    throw new Error(`expected one src/**/${baseName}, found ${found.length}: update the probe`);
  }
  return found[0];
}

/** The import specifier from a probe file to a source file (no extension, always relative). */
function specifier(fromFile: string, toFile: string): string {
  const path = relative(dirname(fromFile), toFile).split(sep).join('/').replace(/\.ts$/, '');
  return path.startsWith('.') ? path : `./${path}`;
}

function write(file: string, lines: string[]): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${lines.join('\n')}\n`);
}

describe('import boundaries of pure modules (npm run lint:boundaries)', () => {
  it(
    'the real tree keeps them: no error',
    async () => {
      const run = await lintBoundaries(REPO);
      expect(run.violations.filter((v) => v.severity === 'error')).toEqual([]);
      expect(run.exitCode).toBe(0);
      expect(run.output).toMatch(/modules, \d+ dependencies cruised/);
    },
    LINT_TIMEOUT_MS,
  );

  describe('a copy of the tree with probe files', () => {
    let root: string;
    let run: LintRun;
    const from = (file: string) => run.violations.filter((v) => v.from === file);

    beforeAll(async () => {
      root = mkdtempSync(join(tmpdir(), 'boundaries-'));
      for (const entry of [
        'src',
        'projections',
        'tsconfig.json',
        'package.json',
        '.dependency-cruiser.cjs',
      ]) {
        cpSync(join(REPO, entry), join(root, entry), { recursive: true });
      }
      symlinkSync(join(REPO, 'node_modules'), join(root, 'node_modules'), 'dir');

      const probeSlice = join(root, 'src', 'probe-slice');
      const readModelAdapter = findSource(root, 'sqlite-read-model-store.ts');
      const commandHandler = findSource(root, 'command-handler.ts');
      const anotherDecider = findSource(root, 'subscription.decider.ts');

      // The probe from issue 13: it linted clean under the old ESLint rule.
      const adapterProbe = join(probeSlice, 'adapter-probe.decider.ts');
      write(adapterProbe, [
        `import * as readModelAdapter from '${specifier(adapterProbe, readModelAdapter)}';`,
        `import * as nodemailer from 'nodemailer';`,
        `import * as commandHandler from '${specifier(adapterProbe, commandHandler)}';`,
        `export const probe = [readModelAdapter, nodemailer, commandHandler];`,
      ]);
      write(join(root, 'src', 'shared', 'file-probe.ts'), [
        `import { readFileSync } from 'node:fs';`,
        `export const probe = readFileSync;`,
      ]);
      // Unprefixed `path` and prefix-only `node:test`: both shapes of a built-in.
      write(join(root, 'projections', 'builtin-probe.projection.ts'), [
        `import { join } from 'path';`,
        `import { test } from 'node:test';`,
        `export const probe = [join, test];`,
      ]);
      // A new file name the config has never seen, crossing the boundary two
      // ways the old rule could not see: a type-only import, and I/O through
      // a helper that is itself unguarded.
      write(join(probeSlice, 'file-reader.ts'), [
        `import { readFileSync } from 'node:fs';`,
        `export const readFile = readFileSync;`,
      ]);
      write(join(probeSlice, 'indirect-probe.decision.ts'), [
        `import type { LoggerService } from '@nestjs/common';`,
        `import { readFile } from './file-reader';`,
        `export const probe = readFile;`,
        `export type ProbeLogger = LoggerService;`,
      ]);
      // What a pure module may do: hash with node:crypto, build on another decider.
      const allowedProbe = join(probeSlice, 'allowed-probe.decider.ts');
      write(allowedProbe, [
        `import { createHash } from 'node:crypto';`,
        `import { randomBytes } from 'crypto';`,
        `import * as anotherDecider from '${specifier(allowedProbe, anotherDecider)}';`,
        `export const probe = [createHash, randomBytes, anotherDecider];`,
      ]);
      // Two slices importing each other, module to module.
      write(join(root, 'src', 'probe-alpha', 'alpha.ts'), [
        `import { beta } from '../probe-beta/beta';`,
        `export const alpha = (): unknown => beta;`,
      ]);
      write(join(root, 'src', 'probe-beta', 'beta.ts'), [
        `import { alpha } from '../probe-alpha/alpha';`,
        `export const beta = (): unknown => alpha;`,
      ]);
      // A third slice between the two that share the user stream: enrollment →
      // probe-delta → directory → enrollment. The one allowed cycle does not
      // cover it. (Type-only imports: no module cycle, only the slices' one.)
      write(join(root, 'src', 'enrollment', 'delta-user.ts'), [
        `import type { Delta } from '../probe-delta/delta';`,
        `export type DeltaUser = Delta;`,
      ]);
      write(join(root, 'src', 'probe-delta', 'delta.ts'), [
        `import type { UserProfile } from '../directory/user.decider';`,
        `export type Delta = UserProfile;`,
      ]);

      run = await lintBoundaries(root);
    }, LINT_TIMEOUT_MS);

    afterAll(() => {
      if (root) rmSync(root, { recursive: true, force: true });
    });

    it('fails the lint', () => {
      expect(run.exitCode).not.toBe(0);
      expect(run.output).toMatch(/\d+ errors/);
    });

    it('reports a decider importing the SQLite read-model adapter, nodemailer and the command handler', () => {
      const found = from('src/probe-slice/adapter-probe.decider.ts');
      const errorsTo = (pattern: RegExp, rule: string) =>
        found.filter((v) => v.severity === 'error' && v.rule === rule && pattern.test(v.to));
      expect(
        errorsTo(/^src\/.*sqlite-read-model-store\.ts$/, 'pure-no-application-edge'),
      ).toHaveLength(1);
      expect(errorsTo(/^src\/.*command-handler\.ts$/, 'pure-no-application-edge')).toHaveLength(1);
      expect(errorsTo(/node_modules\/nodemailer\//, 'pure-no-framework-or-driver')).toHaveLength(1);
      // …and what those two files reach: the SQLite driver and Nest.
      expect(
        errorsTo(/node_modules\/better-sqlite3\//, 'pure-no-framework-or-driver'),
      ).toHaveLength(1);
      expect(
        errorsTo(/node_modules\/@nestjs\/common\//, 'pure-no-framework-or-driver'),
      ).toHaveLength(1);
    });

    it('reports a src/shared/ module importing node:fs', () => {
      expect(from('src/shared/file-probe.ts')).toEqual([
        { severity: 'error', rule: 'pure-no-io', from: 'src/shared/file-probe.ts', to: 'fs' },
      ]);
    });

    it('reports a projection importing built-ins with and without the node: prefix', () => {
      const found = from('projections/builtin-probe.projection.ts');
      expect(found.map((v) => `${v.severity} ${v.rule} ${v.to}`).sort()).toEqual([
        'error pure-no-io node:test',
        'error pure-no-io path',
      ]);
    });

    it('guards a newly named *.decision.ts: a type-only Nest import and I/O through a helper', () => {
      const found = from('src/probe-slice/indirect-probe.decision.ts');
      expect(found.map((v) => `${v.severity} ${v.rule}`).sort()).toEqual([
        'error pure-no-framework-or-driver',
        'error pure-no-io',
      ]);
      expect(found.find((v) => v.rule === 'pure-no-io')?.to).toBe('fs');
      expect(run.output).toMatch(
        /indirect-probe\.decision\.ts → fs\s+src\/probe-slice\/file-reader\.ts →\s+fs/,
      );
      // The helper itself is not a pure module: it is reported only through its importer.
      expect(from('src/probe-slice/file-reader.ts')).toEqual([]);
    });

    it('lets a decider import node:crypto and another decider', () => {
      expect(from('src/probe-slice/allowed-probe.decider.ts')).toEqual([]);
    });

    it('fails on a module cycle and on a cycle between slices', () => {
      const cycle = run.violations.filter((v) => v.from.startsWith('src/probe-alpha'));
      expect(cycle).toContainEqual({
        severity: 'error',
        rule: 'no-module-cycle',
        from: 'src/probe-alpha/alpha.ts',
        to: 'src/probe-beta/beta.ts',
      });
      expect(cycle).toContainEqual({
        severity: 'error',
        rule: 'no-slice-cycle',
        from: 'src/probe-alpha',
        to: 'src/probe-beta',
      });
      expect(run.exitCode).not.toBe(0);
    });

    it('fails on a third slice in the user stream’s cycle, and only warns on directory ↔ enrollment', () => {
      const slices = run.violations.filter((v) => /slices?-cycle$/.test(v.rule));
      expect(slices).toContainEqual({
        severity: 'error',
        rule: 'no-slice-cycle',
        from: 'src/enrollment',
        to: 'src/probe-delta',
      });
      expect(slices).toContainEqual({
        severity: 'error',
        rule: 'no-slice-cycle',
        from: 'src/probe-delta',
        to: 'src/directory',
      });
      expect(slices.filter((v) => v.from === 'src/directory' && v.to === 'src/enrollment')).toEqual(
        [
          {
            severity: 'warn',
            rule: 'user-stream-slices-cycle',
            from: 'src/directory',
            to: 'src/enrollment',
          },
        ],
      );
    });
  });

  it('names only files that exist when it names a pure module file by file', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const config = require(join(REPO, '.dependency-cruiser.cjs')) as {
      forbidden: { name: string; from: { path?: string | string[] } }[];
    };
    const pureRule = config.forbidden.find((rule) => rule.name === 'pure-no-io');
    const patterns = [pureRule?.from.path ?? []].flat();
    // `^src/enrollment/mfa\.ts$`: a single file, not a family. A rename would
    // silently drop its guard; this says which line to update.
    const singleFiles = patterns
      .filter((pattern) => /^\^[\w/-]+(\\\.[\w-]+)*\$$/.test(pattern))
      .map((pattern) => pattern.slice(1, -1).replace(/\\\./g, '.'));
    expect(patterns.length).toBeGreaterThan(singleFiles.length);
    expect(singleFiles.filter((file) => !existsSync(join(REPO, file)))).toEqual([]);
  });

  it('runs in `npm run lint` and in the CI script', () => {
    const scripts = (
      JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
        scripts: Record<string, string>;
      }
    ).scripts;
    expect(scripts['lint:boundaries']).toMatch(/^depcruise src projections\b/);
    expect(scripts.lint).toContain('npm run -s lint:boundaries');
    expect(readFileSync(join(REPO, 'scripts', 'test-all.sh'), 'utf8')).toMatch(
      /^npm run -s lint:boundaries$/m,
    );
  });
});
