import { hashPassword, type PasswordCheck, verifyPassword } from '../../crypto/password.ts';
import { Semaphore } from '../../platform/semaphore.ts';
import { identityErrors } from './identity.errors.ts';

/**
 * argon2id with bounded concurrency: each hash holds 19 MiB, so at most `maxConcurrent` run at once
 * and a caller waits at most `maxWaitMs` for a slot before getting `login_busy` (429). A login flood
 * therefore costs bounded memory and gets fast refusals instead of an ever-growing queue.
 */
export class PasswordHasher {
  readonly #slots: Semaphore;
  readonly #maxWaitMs: number;
  #dummyHash: Promise<string> | undefined;

  constructor(options: { maxConcurrent?: number; maxWaitMs?: number } = {}) {
    this.#slots = new Semaphore(options.maxConcurrent ?? 4);
    this.#maxWaitMs = options.maxWaitMs ?? 5_000;
  }

  async hash(password: string): Promise<string> {
    return this.#bounded(() => hashPassword(password));
  }

  async verify(stored: string, password: string): Promise<PasswordCheck> {
    return this.#bounded(() => verifyPassword(stored, password));
  }

  /**
   * Spends the same argon2 work as a real verification and fails: for unknown accounts, so that an
   * unknown email and a wrong password take the same time (no user enumeration by timing).
   */
  async verifyNothing(password: string): Promise<void> {
    this.#dummyHash ??= hashPassword('strongroom: no such account, this hash matches nothing');
    const dummy = await this.#dummyHash;
    await this.#bounded(() => verifyPassword(dummy, password));
  }

  async #bounded<T>(work: () => Promise<T>): Promise<T> {
    const outcome = await this.#slots.run(work, this.#maxWaitMs);
    if (!outcome.ran) throw identityErrors.busy();
    return outcome.value;
  }
}
