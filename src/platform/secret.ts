import { inspect } from 'node:util';

/**
 * A secret value (master key, password, token) that redacts itself wherever it could leak:
 * `String()`, JSON, `util.inspect`, template strings and pino. Read it with `reveal()` only at the
 * point of use.
 */
export class Secret<T = string> {
  readonly #value: T;

  constructor(value: T) {
    this.#value = value;
  }

  reveal(): T {
    return this.#value;
  }

  toString(): string {
    return '[redacted]';
  }

  toJSON(): string {
    return '[redacted]';
  }

  [inspect.custom](): string {
    return 'Secret([redacted])';
  }
}
