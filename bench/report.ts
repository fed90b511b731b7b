/*
 * The one reporting API of the benchmark sections (bench/run.ts runs them):
 * a section is `run(options) → Figure[]`, each figure a number beside the
 * ceiling measured in the same run and, when the issue sets one, its target.
 */

/** What bench/run.ts hands every section. */
export interface BenchOptions {
  /** Small population and short measures: the whole run in under a minute (CI). */
  quick: boolean;
  /** Progress lines (set-up times, load average); the table comes at the end. */
  log: (line: string) => void;
}

/**
 * One measured figure.
 * - `value` in `unit` ('req/s', 'ms', 'ev/s', 'MB', 'x', ...);
 * - `ceiling`: the same measure on the bare floor below it (framework, disk,
 *   raw read), taken in the same run, in the same unit; null when none;
 * - `ratio`: value / ceiling (or given explicitly, e.g. a p99 over the ceiling's p99);
 * - `target`: the issue's target in words, and `met` whether this run reached
 *   it; both null for a figure shown for context only.
 */
export interface Figure {
  section: string;
  figure: string;
  value: number;
  unit: string;
  ceiling: number | null;
  ratio: number | null;
  target: string | null;
  met: boolean | null;
  note?: string;
}

/** A section of the benchmark: what it measures, and the figures of one run. */
export interface Section {
  name: string;
  description: string;
  run(options: BenchOptions): Promise<Figure[]>;
}

/** A figure builder for one section; the ratio is value / ceiling unless given. */
export function figures(section: string) {
  return (
    figure: string,
    value: number,
    unit: string,
    extra: {
      ceiling?: number | null;
      ratio?: number | null;
      target?: string | null;
      met?: boolean | null;
      note?: string;
    } = {},
  ): Figure => {
    const ceiling = extra.ceiling ?? null;
    const ratio =
      extra.ratio !== undefined ? extra.ratio : ceiling ? round(value / ceiling, 3) : null;
    return {
      section,
      figure,
      value: round(value, 2),
      unit,
      ceiling: ceiling === null ? null : round(ceiling, 2),
      ratio,
      target: extra.target ?? null,
      met: extra.met ?? null,
      ...(extra.note ? { note: extra.note } : {}),
    };
  };
}

export const round = (n: number, digits: number) => {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
};

export const perSecond = (count: number, ms: number) => Math.round((count * 1000) / ms);

/** The p-th percentile (nearest rank) of `values`; NaN when empty. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

const number = (n: number | null) =>
  n === null || Number.isNaN(n)
    ? '-'
    : Math.abs(n) >= 100
      ? Math.round(n).toLocaleString('en-US')
      : String(round(n, 2));

/** The table printed at the end of a run: figure, value, ceiling, ratio, target, met?. */
export function formatTable(rows: Figure[]): string {
  const cells = rows.map((f) => [
    `${f.section}: ${f.figure}`,
    `${number(f.value)} ${f.unit}`,
    f.ceiling === null ? '' : `${number(f.ceiling)} ${f.unit}`,
    f.ratio === null ? '' : `${round(f.ratio, 2)}x`,
    f.target ?? '',
    f.met === null ? '' : f.met ? 'yes' : 'NO',
  ]);
  const header = ['figure', 'value', 'ceiling', 'ratio', 'target', 'met?'];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) =>
    `| ${c.map((cell, i) => (i === 0 || i === 4 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join(' | ')} |`;
  return [
    line(header),
    `|${widths.map((w, i) => (i === 0 || i === 4 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`,
    ...cells.map(line),
  ].join('\n');
}
