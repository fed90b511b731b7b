import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { auditSection } from './audit.bench';
import { eventStoreSection } from './event-store.bench';
import { loginSection } from './login.bench';
import { notificationsSection } from './notifications.bench';
import { pagesSection } from './pages.bench';
import { readModelsSection } from './read-models.bench';
import { Figure, formatTable, Section } from './report';

/*
 * `npm run bench`: every section, one table at the end (figure, value,
 * ceiling, ratio, target, met?), also written to var/bench/results.json.
 * `npm run bench -- --quick` runs a small population for a few seconds each
 * (CI proves with it that the benchmark works; no threshold there).
 */

const SECTIONS: Section[] = [
  loginSection,
  eventStoreSection,
  readModelsSection,
  notificationsSection,
  auditSection,
  pagesSection,
];

const USAGE = `Usage: npm run bench -- [--quick] [--only <section>]... [--out <file>]

  --quick            small population, short measures (under a minute in all)
  --only <section>   run only this section (repeatable): ${SECTIONS.map((s) => s.name).join(', ')}
  --out <file>       where to write the JSON results (default var/bench/results.json)
  --help             this text

Sections:
${SECTIONS.map((s) => `  ${s.name.padEnd(14)} ${s.description}`).join('\n')}
`;

/** The machine the figures were measured on, written beside them. */
function machine() {
  return {
    cpus: `${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}`,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    loadAverageAtStart: loadavg().map((n) => Math.round(n * 100) / 100),
  };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string', multiple: true },
      out: { type: 'string', default: join(__dirname, '..', '..', 'var', 'bench', 'results.json') },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const unknown = (values.only ?? []).filter((name) => !SECTIONS.some((s) => s.name === name));
  if (unknown.length > 0) {
    process.stderr.write(`Unknown section: ${unknown.join(', ')}\n\n${USAGE}`);
    return 2;
  }
  const chosen = values.only ? SECTIONS.filter((s) => values.only!.includes(s.name)) : SECTIONS;
  const quick = values.quick;
  const startedAt = new Date();
  const host = machine();
  const log = (line: string) => process.stdout.write(`${line}\n`);
  log(
    `Benchmark${quick ? ' (quick)' : ''}: ${chosen.map((s) => s.name).join(', ')} on ${host.cpus}, ` +
      `${host.memoryGiB} GiB, Node ${host.node}, load average ${host.loadAverageAtStart.join(' ')}`,
  );
  const all: Figure[] = [];
  const sections: Array<{ name: string; seconds: number; error?: string }> = [];
  for (const section of chosen) {
    const t0 = performance.now();
    log(`\n== ${section.name}: ${section.description}`);
    try {
      all.push(...(await section.run({ quick, log: (line) => log(`  ${line}`) })));
      sections.push({ name: section.name, seconds: Math.round((performance.now() - t0) / 1000) });
    } catch (error) {
      const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
      log(`  section ${section.name} failed: ${message}`);
      sections.push({
        name: section.name,
        seconds: Math.round((performance.now() - t0) / 1000),
        error: message.split('\n')[0],
      });
    }
  }
  const table = formatTable(all);
  log(`\n${table}`);
  const loadAtEnd = loadavg().map((n) => Math.round(n * 100) / 100);
  log(`load average at the end: ${loadAtEnd.join(' ')}`);
  mkdirSync(join(values.out, '..'), { recursive: true });
  writeFileSync(
    values.out,
    `${JSON.stringify(
      {
        quick,
        startedAt: startedAt.toISOString(),
        seconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
        machine: { ...host, loadAverageAtEnd: loadAtEnd },
        sections,
        figures: all,
        table,
      },
      null,
      2,
    )}\n`,
  );
  log(`written to ${values.out}`);
  return sections.some((s) => s.error) ? 1 : 0;
}

main().then(
  (code) => {
    // Sections close their servers; an exit here ends any handle a library left open.
    process.exit(code);
  },
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
    process.exit(2);
  },
);
