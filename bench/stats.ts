/** Small, dependency-free statistics for the bench: nearest-rank percentiles, medians, summaries. */

export interface LatencySummary {
  n: number;
  meanMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Sum of the individual durations (not wall time). */
  totalMs: number;
}

/** Nearest-rank percentile (p in 0..100) of an ascending array; NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function summarize(durationsMs: readonly number[]): LatencySummary {
  const s = [...durationsMs].sort((a, b) => a - b);
  const totalMs = s.reduce((a, b) => a + b, 0);
  return {
    n: s.length,
    meanMs: s.length ? totalMs / s.length : Number.NaN,
    p50Ms: percentile(s, 50),
    p90Ms: percentile(s, 90),
    p99Ms: percentile(s, 99),
    maxMs: s.at(-1) ?? Number.NaN,
    totalMs,
  };
}

/** A number for a table: integers above 100, two decimals below. */
export function fmt(value: number, digits = 2): string {
  if (!Number.isFinite(value)) return 'n/a';
  return Math.abs(value) >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(digits);
}
