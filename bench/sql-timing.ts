import pg from 'pg';

/**
 * Where the time of a scenario goes, seen from the client: every statement the bench process sends
 * through `pg` is timed (send → result, so it includes the round trip) and grouped by its shape
 * (tenant schema names, literals and parameters folded). Bench-only instrumentation of the driver
 * in this process; the server under test is never instrumented.
 */
export interface StatementShare {
  shape: string;
  count: number;
  totalMs: number;
}

type Query = (...args: unknown[]) => unknown;

export class SqlTimer {
  readonly #byShape = new Map<string, { count: number; totalMs: number }>();
  #original: Query | undefined;

  start(): void {
    if (this.#original) return;
    const proto = pg.Client.prototype as unknown as { query: Query };
    const original = proto.query;
    this.#original = original;
    const record = (text: string, t0: number) => {
      const shape = shapeOf(text);
      const entry = this.#byShape.get(shape) ?? { count: 0, totalMs: 0 };
      entry.count++;
      entry.totalMs += performance.now() - t0;
      this.#byShape.set(shape, entry);
    };
    proto.query = function (this: unknown, ...args: unknown[]) {
      const first = args[0];
      const text = typeof first === 'string' ? first : (first as { text?: unknown } | undefined)?.text;
      const t0 = performance.now();
      const result = original.apply(this, args);
      if (typeof text === 'string' && result instanceof Promise) {
        result.then(
          () => record(text, t0),
          () => record(text, t0),
        );
      }
      return result;
    };
  }

  stop(): void {
    if (!this.#original) return;
    (pg.Client.prototype as unknown as { query: Query }).query = this.#original;
    this.#original = undefined;
  }

  /** Shapes by total time, largest first, and clears the tally. */
  take(): StatementShare[] {
    const shares = [...this.#byShape].map(([shape, v]) => ({ shape, ...v }));
    this.#byShape.clear();
    return shares.sort((a, b) => b.totalMs - a.totalMs);
  }
}

/** A statement's shape: whitespace collapsed, tenant names and literals folded, truncated. */
export function shapeOf(text: string): string {
  const shape = text
    .replace(/\s+/g, ' ')
    .replace(/t_[0-9a-f]{32}/g, 't_*')
    .replace(/'[^']*'/g, "'…'")
    .replace(/\$\d+(, \$\d+)*/g, '$n')
    .trim();
  return shape.length > 110 ? `${shape.slice(0, 107)}…` : shape;
}
