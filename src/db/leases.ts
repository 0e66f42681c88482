import { hostname } from 'node:os';
import { type Kysely, sql } from 'kysely';
import { newId } from '../platform/ids.ts';
import type { ControlTables } from './control-tables.ts';

/**
 * Named leases in the control plane: at most one holder per name across every process and node, and a
 * crashed holder's lease simply runs out. Used for the fleet migrator and, later, scheduled jobs.
 */
export interface Lease {
  readonly name: string;
  readonly holder: string;
  readonly expiresAt: Date;
}

export interface LeaseConflict {
  readonly holder: string;
  readonly acquiredAt: Date;
  readonly expiresAt: Date;
}

/** Takes the lease if free or expired; otherwise returns who holds it. */
export async function acquireLease(
  control: Kysely<ControlTables>,
  name: string,
  holder: string,
  ttlMs: number,
): Promise<{ lease: Lease } | { conflict: LeaseConflict }> {
  const expiresAt = sql<Date>`now() + ${`${ttlMs} milliseconds`}::interval`;
  // Two tries: the holder may release between our insert and our look-up, freeing the lease.
  for (let attempt = 0; attempt < 2; attempt++) {
    const taken = await control
      .insertInto('leases')
      .values({ name, holder, acquired_at: sql`now()`, expires_at: expiresAt })
      .onConflict((oc) =>
        oc
          .column('name')
          .doUpdateSet({ holder, acquired_at: sql`now()`, expires_at: expiresAt })
          .where('leases.expires_at', '<', sql<Date>`now()`),
      )
      .returning(['expires_at'])
      .executeTakeFirst();
    if (taken) return { lease: { name, holder, expiresAt: new Date(taken.expires_at) } };
    const current = await control
      .selectFrom('leases')
      .select(['holder', 'acquired_at', 'expires_at'])
      .where('name', '=', name)
      .executeTakeFirst();
    if (current) {
      return {
        conflict: {
          holder: current.holder,
          acquiredAt: new Date(current.acquired_at),
          expiresAt: new Date(current.expires_at),
        },
      };
    }
  }
  throw new Error(`lease ${name} is changing hands too fast to acquire`);
}

/** Extends a held lease; false if it was lost (expired and taken by someone else). */
export async function renewLease(
  control: Kysely<ControlTables>,
  lease: Lease,
  ttlMs: number,
): Promise<boolean> {
  const result = await control
    .updateTable('leases')
    .set({ expires_at: sql`now() + ${`${ttlMs} milliseconds`}::interval` })
    .where('name', '=', lease.name)
    .where('holder', '=', lease.holder)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

export async function releaseLease(control: Kysely<ControlTables>, lease: Lease): Promise<void> {
  await control
    .deleteFrom('leases')
    .where('name', '=', lease.name)
    .where('holder', '=', lease.holder)
    .execute();
}

/**
 * Runs `run` while holding the lease `name`, renewing it every third of its TTL; `isLost()` turns
 * true if a renewal failed (the run should stop at its next safe point). Returns the holder instead
 * when someone else has it. The lease is released afterwards, or simply expires.
 */
export async function withLease<T>(
  control: Kysely<ControlTables>,
  name: string,
  holder: string,
  ttlMs: number,
  run: (lease: Lease, isLost: () => boolean) => Promise<T>,
): Promise<{ value: T } | { conflict: LeaseConflict }> {
  const acquired = await acquireLease(control, name, holder, ttlMs);
  if ('conflict' in acquired) return acquired;
  const { lease } = acquired;
  let lost = false;
  const heartbeat = setInterval(() => {
    renewLease(control, lease, ttlMs).then(
      (held) => {
        if (!held) lost = true;
      },
      () => {
        lost = true;
      },
    );
  }, ttlMs / 3);
  heartbeat.unref();
  try {
    return { value: await run(lease, () => lost) };
  } finally {
    clearInterval(heartbeat);
    // If releasing fails the lease simply expires; the run's own outcome matters more than this.
    await releaseLease(control, lease).catch(() => undefined);
  }
}

/** Who holds a lease: this host and process, and a random part so two jobs of one process differ. */
export function newLeaseHolder(): string {
  return `${hostname()}:${process.pid}:${newId().slice(0, 8)}`;
}
