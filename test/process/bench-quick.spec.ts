import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireBuild, ROOT } from '../support/processes';

/*
 * `npm run bench -- --quick` works end to end: every section runs against the
 * built service and the embedded stores, and results.json holds every figure
 * of the table with a number in it. No threshold: CI machines differ,
 * and the figures are only meaningful beside their ceilings on one machine.
 */

interface Figure {
  section: string;
  figure: string;
  value: number;
  unit: string;
  ceiling: number | null;
  ratio: number | null;
  target: string | null;
  met: boolean | null;
}

const RUN = join(ROOT, 'dist', 'bench', 'run.js');

function runQuick(out: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [RUN, '--quick', '--out', out], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('close', (code) => resolve({ code, output }));
  });
}

describe('npm run bench -- --quick', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mfa-bench-quick-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs every section and writes every figure of the table to results.json', async () => {
    requireBuild();
    const out = join(dir, 'results.json');
    const { code, output } = await runQuick(out);
    expect({ code, tail: output.slice(-3000) }).toEqual({ code: 0, tail: expect.any(String) });

    const results = JSON.parse(readFileSync(out, 'utf8')) as {
      quick: boolean;
      machine: { cpus: string };
      sections: Array<{ name: string; error?: string }>;
      figures: Figure[];
      table: string;
    };
    expect(results.quick).toBe(true);
    expect(results.sections.map((s) => [s.name, s.error ?? 'ok'])).toEqual([
      ['login', 'ok'],
      ['event-store', 'ok'],
      ['read-models', 'ok'],
      ['notifications', 'ok'],
      ['audit', 'ok'],
      ['pages', 'ok'],
    ]);
    // The figures, each found once, with a finite value; those with a target say met or not.
    const expected: Array<[string, RegExp, boolean]> = [
      ['login', /^framework ceiling/, false],
      ['login', /^GET login-requirement, 50 connections$/, true],
      ['login', /^GET login-requirement p99$/, true],
      ['login', /^POST totp\/verify, success/, true],
      ['login', /^POST totp\/verify success p99$/, true],
      ['login', /^one-fsync ceiling/, false],
      ['login', /^durable commands: user registrations/, true],
      ['login', /^durable commands: TOTP enrollment confirmations/, true],
      ['event-store', /^peer: Emmett SQLite/, false],
      ['event-store', /^peer: ours \/ Emmett/, false],
      ['read-models', /^ceiling: readAll \+ parse/, false],
      ['read-models', /^rebuild from zero/, true],
      ['read-models', /^peak RSS while rebuilding/, true],
      ['read-models', /^enrolled-users search p95/, true],
      ['read-models', /^command ceiling/, true],
      ['read-models', /^projection lag p99 at 1,000 commands\/s/, true],
      ['read-models', /^search at .* matching nobody, p95$/, true],
      ['pages', /^browser floor/, false],
      ['pages', /^\/admin first load above the browser floor, p50$/, true],
      ['pages', /^\/enroll first load above the browser floor, p50$/, true],
      ['pages', /^\/admin ready with its data/, false],
    ];
    for (const [section, name, hasTarget] of expected) {
      const found = results.figures.filter((f) => f.section === section && name.test(f.figure));
      expect({ section, name: String(name), count: found.length }).toEqual({
        section,
        name: String(name),
        count: 1,
      });
      const [figure] = found;
      expect(Number.isFinite(figure.value)).toBe(true);
      expect(typeof figure.met === 'boolean').toBe(hasTarget);
      if (figure.ceiling !== null) expect(figure.ratio).toEqual(expect.any(Number));
    }
    // The table printed is the one written.
    expect(output).toContain(results.table);
  }, 240_000);
});
