import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../support/harness';
import { requireBuild, ROOT, run, ServiceProcess, spawnService } from '../support/processes';

/*
 * The README's walkthrough is docs/walkthrough.sh: README.md shows its
 * sections verbatim, and here the script runs against the built service,
 * started as a newcomer starts it (a fresh DATA_DIR, no secrets configured),
 * and every answer it prints is checked against the `# -> ` line written
 * under its command. Either drifting from the other, or from what the service
 * answers, fails this test (issue 17).
 */

const SCRIPT = join(ROOT, 'docs', 'walkthrough.sh');
const README = join(ROOT, 'README.md');

/** `# == name ==` starts a section; the lines before the first are the script's own set-up. */
const SECTION_MARKER = /^# == ([\w-]+) ==$/;
/** README.md: the code block after `<!-- walkthrough.sh: name -->` shows that section. */
const README_BLOCK = /<!-- walkthrough\.sh: ([\w-]+) -->\n\n?```sh\n([\s\S]*?)```/g;
const EXPECTATION = /^# -> (.*)$/;

/** The script's sections in order: name and text (each line ending with a newline). */
function scriptSections(script: string): { name: string; text: string }[] {
  const sections: { name: string; text: string }[] = [];
  for (const line of script.split('\n')) {
    const marker = SECTION_MARKER.exec(line);
    if (marker) sections.push({ name: marker[1], text: '' });
    else if (sections.length > 0) sections[sections.length - 1].text += `${line}\n`;
  }
  // The file's final newline leaves one empty line behind the last section.
  const last = sections[sections.length - 1];
  if (last) last.text = last.text.replace(/\n\n$/, '\n');
  return sections;
}

/** The README's marked code blocks in order: name and text. */
function readmeBlocks(readme: string): { name: string; text: string }[] {
  return [...readme.matchAll(README_BLOCK)].map(([, name, text]) => ({ name, text }));
}

/**
 * The regular expression of the expected output: one line per `# -> ` line,
 * `…` standing for any text within the line, and a `# -> …` line alone for
 * any number of whole lines. A line may end in CRLF, as the .eml files' headers
 * do: what a reader sees is the same.
 */
function expectedOutput(expectations: string[]): RegExp {
  return new RegExp(`^${expectations.map(linePattern).join('')}`);
}
function linePattern(expectation: string): string {
  if (expectation === '…') return '(?:[^\\n]*\\n)*?';
  const literal = expectation.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return `${literal.replace(/…/g, '[^\\n]*')}\\r?\\n`;
}

describe('the README walkthrough (docs/walkthrough.sh)', () => {
  const script = readFileSync(SCRIPT, 'utf8');
  const sections = scriptSections(script);
  const expectations = script
    .split('\n')
    .map((line) => EXPECTATION.exec(line)?.[1])
    .filter((expected): expected is string => expected !== undefined);

  it('is shown in README.md verbatim, section by section, in order', () => {
    const blocks = readmeBlocks(readFileSync(README, 'utf8'));
    expect(sections.length).toBeGreaterThan(0);
    expect(blocks.map((block) => block.name)).toEqual(sections.map((section) => section.name));
    for (const [index, section] of sections.entries()) {
      expect({ name: section.name, text: blocks[index].text }).toEqual(section);
    }
  });

  describe('run against the service started on a fresh DATA_DIR', () => {
    let dataDir: string;
    let service: ServiceProcess | undefined;

    beforeAll(() => requireBuild());
    beforeEach(() => (dataDir = tempDir('mfa-walkthrough-')));
    afterEach(async () => {
      await service?.stop();
      service = undefined;
      rmSync(dataDir, { recursive: true, force: true });
    });

    it('answers every step what the script (and so the README) shows', async () => {
      // As `npm start` does with no configuration: secrets generated into DATA_DIR.
      service = await spawnService(dataDir, {}, { withSecrets: false });
      const port = new URL(service.url).port;
      const result = await run('bash', [SCRIPT], {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        DATA_DIR: dataDir,
        PORT: port,
      });
      const context = `exit ${result.code}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`;
      expect({ code: result.code, context }).toEqual({ code: 0, context });

      // The first expectation the output stops matching, with what was printed there.
      let matched = 0;
      while (
        matched < expectations.length &&
        expectedOutput(expectations.slice(0, matched + 1)).test(result.stdout)
      ) {
        matched += 1;
      }
      const firstMismatch = matched < expectations.length ? expectations[matched] : null;
      expect({ firstMismatch, stdout: result.stdout }).toEqual({
        firstMismatch: null,
        stdout: result.stdout,
      });
      // Nothing printed beyond the last expectation.
      expect(result.stdout).toMatch(new RegExp(`${expectedOutput(expectations).source}$`));
    }, 180_000);
  });
});
