/**
 * Bounds how many of something run at once (argon2 hashes: each holds 19 MiB, so an unbounded login
 * flood would exhaust memory). Waiters queue in order; `tryAcquireWithin` gives up after a deadline
 * so a flood is refused rather than queued forever.
 */
export class Semaphore {
  readonly #limit: number;
  #active = 0;
  readonly #waiters: Array<() => void> = [];

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new Error('a semaphore needs a limit of at least 1');
    this.#limit = limit;
  }

  get active(): number {
    return this.#active;
  }

  get waiting(): number {
    return this.#waiters.length;
  }

  /** Runs `fn` once a slot is free; false (without running it) if none frees up within `waitMs`. */
  async run<T>(fn: () => Promise<T>, waitMs: number): Promise<{ ran: true; value: T } | { ran: false }> {
    if (!(await this.#acquire(waitMs))) return { ran: false };
    try {
      return { ran: true, value: await fn() };
    } finally {
      this.#release();
    }
  }

  #acquire(waitMs: number): Promise<boolean> {
    if (this.#active < this.#limit) {
      this.#active++;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const grant = () => {
        clearTimeout(timer);
        this.#active++;
        resolve(true);
      };
      const timer = setTimeout(() => {
        const index = this.#waiters.indexOf(grant);
        if (index >= 0) this.#waiters.splice(index, 1);
        resolve(false);
      }, waitMs);
      this.#waiters.push(grant);
    });
  }

  #release(): void {
    this.#active--;
    this.#waiters.shift()?.();
  }
}
