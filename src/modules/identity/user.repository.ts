import { type Kysely, type Selectable, sql } from 'kysely';
import type { AnyKysely } from '../../db/database.ts';
import type { ApiKeysTable, SessionsTable, TenantTables, UsersTable } from '../../db/tenant-tables.ts';

export type AccountRole = UsersTable['role'];

export interface User {
  id: string;
  email: string;
  displayName: string;
  status: UsersTable['status'];
  role: AccountRole;
  createdAt: Date;
}

export interface UserWithSecret extends User {
  passwordHash: string | null;
  /** The encrypted TOTP secret, once enrolment started. */
  mfaSecret: string | null;
  /** Whether login asks for a second factor (enrolment confirmed). */
  mfaEnabled: boolean;
}

export interface ApiKey {
  id: string;
  name: string;
  prefix: string;
  last4: string;
  access: 'read' | 'write';
  projectIds: string[] | null;
  expiresAt: Date | null;
  revokedAt: Date | null;
  createdAt: Date;
}

export interface ActiveSession {
  sessionId: string;
  user: User;
  lastSeenAt: Date;
  /** When the session ends if nothing slides it: the earlier of its idle and absolute expiry. */
  validUntil: Date;
  /** The tenant requires MFA and this user has not enrolled yet. */
  mfaEnrollmentRequired: boolean;
}

/**
 * Users and sessions of one tenant. Every method takes the tenant-scoped handle from `withTenant`,
 * so it can only ever touch the schema of the tenant in context.
 */
export const userRepository = {
  async insert(db: AnyKysely, user: Omit<UserWithSecret, 'mfaSecret' | 'mfaEnabled'>): Promise<User> {
    const row = await tenant(db)
      .insertInto('users')
      .values({
        id: user.id,
        email: user.email,
        display_name: user.displayName,
        status: user.status,
        role: user.role,
        password_hash: user.passwordHash,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toUser(row);
  },

  async findByEmail(db: AnyKysely, email: string): Promise<UserWithSecret | undefined> {
    const row = await tenant(db)
      .selectFrom('users')
      .selectAll()
      .where('email', '=', email)
      .executeTakeFirst();
    return (
      row && {
        ...toUser(row),
        passwordHash: row.password_hash,
        mfaSecret: row.mfa_secret,
        mfaEnabled: row.mfa_enabled_at !== null,
      }
    );
  },

  async findById(db: AnyKysely, userId: string): Promise<User | undefined> {
    const row = await tenant(db).selectFrom('users').selectAll().where('id', '=', userId).executeTakeFirst();
    return row && toUser(row);
  },

  /** Changes an account's role or status; the row as it is now. */
  async update(
    db: AnyKysely,
    userId: string,
    change: { role?: AccountRole | undefined; status?: 'active' | 'disabled' | undefined },
  ): Promise<User> {
    const row = await tenant(db)
      .updateTable('users')
      .set({
        ...(change.role ? { role: change.role } : {}),
        ...(change.status ? { status: change.status } : {}),
        updated_at: sql`now()`,
      })
      .where('id', '=', userId)
      .returningAll()
      .executeTakeFirstOrThrow();
    return toUser(row);
  },

  /** Active owners other than `exceptUserId`: the tenant must always keep one. */
  async countOtherActiveOwners(db: AnyKysely, exceptUserId: string): Promise<number> {
    const row = await tenant(db)
      .selectFrom('users')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('role', '=', 'owner')
      .where('status', '=', 'active')
      .where('id', '<>', exceptUserId)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  },

  /** Locks the owners' rows, so two concurrent demotions cannot both see "another owner remains". */
  async lockOwners(db: AnyKysely): Promise<void> {
    await tenant(db).selectFrom('users').select('id').where('role', '=', 'owner').forUpdate().execute();
  },

  /**
   * The token hashes of a user's sessions and API keys that still work or stopped in the last minute:
   * what a change to the user must clear from the principal cache (the minute covers a credential
   * issued and revoked while the change ran).
   */
  async credentialHashes(db: AnyKysely, userId: string): Promise<Buffer[]> {
    const sessions = await tenant(db)
      .selectFrom('sessions')
      .select('token_hash as hash')
      .where('user_id', '=', userId)
      .where('absolute_expires_at', '>', sql<Date>`now()`)
      .where((eb) =>
        eb.or([eb('revoked_at', 'is', null), eb('revoked_at', '>', sql<Date>`now() - interval '1 minute'`)]),
      )
      .execute();
    const keys = await tenant(db)
      .selectFrom('api_keys')
      .select('key_hash as hash')
      .where('user_id', '=', userId)
      .where((eb) =>
        eb.or([eb('revoked_at', 'is', null), eb('revoked_at', '>', sql<Date>`now() - interval '1 minute'`)]),
      )
      .execute();
    return [...sessions, ...keys].map((r) => Buffer.from(r.hash));
  },

  async sessionHash(db: AnyKysely, sessionId: string): Promise<Buffer | undefined> {
    const row = await tenant(db)
      .selectFrom('sessions')
      .select('token_hash')
      .where('id', '=', sessionId)
      .executeTakeFirst();
    return row && Buffer.from(row.token_hash);
  },

  async apiKeyHash(db: AnyKysely, userId: string, keyId: string): Promise<Buffer | undefined> {
    const row = await tenant(db)
      .selectFrom('api_keys')
      .select('key_hash')
      .where('id', '=', keyId)
      .where('user_id', '=', userId)
      .executeTakeFirst();
    return row && Buffer.from(row.key_hash);
  },

  /** Erases a user's second factor (secret, replay guard, recovery codes); false if it was off. */
  async clearMfa(db: AnyKysely, userId: string): Promise<boolean> {
    const result = await tenant(db)
      .updateTable('users')
      .set({ mfa_secret: null, mfa_enabled_at: null, mfa_last_step: null, updated_at: sql`now()` })
      .where('id', '=', userId)
      .where('mfa_enabled_at', 'is not', null)
      .executeTakeFirst();
    if (result.numUpdatedRows === 0n) return false;
    await tenant(db).deleteFrom('mfa_recovery_codes').where('user_id', '=', userId).execute();
    return true;
  },

  /** Revokes every live API key of a user; returns their hashes (for the index). */
  async revokeApiKeys(db: AnyKysely, userId: string): Promise<Buffer[]> {
    const rows = await tenant(db)
      .updateTable('api_keys')
      .set({ revoked_at: sql`now()` })
      .where('user_id', '=', userId)
      .where('revoked_at', 'is', null)
      .returning('key_hash')
      .execute();
    return rows.map((r) => Buffer.from(r.key_hash));
  },

  async list(db: AnyKysely): Promise<User[]> {
    const rows = await tenant(db).selectFrom('users').selectAll().orderBy('email').execute();
    return rows.map(toUser);
  },

  /** Turns an invitation into an active account; undefined if there is no such invited account. */
  async activateInvited(
    db: AnyKysely,
    email: string,
    displayName: string,
    passwordHash: string,
  ): Promise<User | undefined> {
    const row = await tenant(db)
      .updateTable('users')
      .set({
        status: 'active',
        display_name: displayName,
        password_hash: passwordHash,
        updated_at: sql`now()`,
      })
      .where('email', '=', email)
      .where('status', '=', 'invited')
      .returningAll()
      .executeTakeFirst();
    return row && toUser(row);
  },

  async deleteInvited(db: AnyKysely, userId: string): Promise<void> {
    await tenant(db).deleteFrom('users').where('id', '=', userId).where('status', '=', 'invited').execute();
  },

  async updatePasswordHash(db: AnyKysely, userId: string, passwordHash: string): Promise<void> {
    await tenant(db)
      .updateTable('users')
      .set({ password_hash: passwordHash, updated_at: sql`now()` })
      .where('id', '=', userId)
      .execute();
  },

  async insertSession(
    db: AnyKysely,
    session: Pick<Selectable<SessionsTable>, 'id' | 'user_id' | 'token_hash' | 'source_ip' | 'user_agent'> & {
      idleExpiresAt: Date;
      absoluteExpiresAt: Date;
    },
  ): Promise<void> {
    await tenant(db)
      .insertInto('sessions')
      .values({
        id: session.id,
        user_id: session.user_id,
        token_hash: session.token_hash,
        source_ip: session.source_ip,
        user_agent: session.user_agent,
        idle_expires_at: session.idleExpiresAt,
        absolute_expires_at: session.absoluteExpiresAt,
      })
      .execute();
  },

  /** The live session for a token hash: not revoked, not idle or absolutely expired, user active. */
  async findActiveSession(db: AnyKysely, tokenHash: Buffer): Promise<ActiveSession | undefined> {
    const row = await tenant(db)
      .selectFrom('sessions as s')
      .innerJoin('users as u', 'u.id', 's.user_id')
      .select([
        's.id as session_id',
        's.last_seen_at',
        's.idle_expires_at',
        's.absolute_expires_at',
        'u.id',
        'u.email',
        'u.display_name',
        'u.status',
        'u.role',
        'u.created_at',
        'u.mfa_enabled_at',
        mfaRequiredColumn(db),
      ])
      .where('s.token_hash', '=', tokenHash)
      .where('s.revoked_at', 'is', null)
      .where('s.idle_expires_at', '>', sql<Date>`now()`)
      .where('s.absolute_expires_at', '>', sql<Date>`now()`)
      .where('u.status', '=', 'active')
      .executeTakeFirst();
    return (
      row && {
        sessionId: row.session_id,
        lastSeenAt: new Date(row.last_seen_at),
        validUntil: new Date(
          Math.min(new Date(row.idle_expires_at).getTime(), new Date(row.absolute_expires_at).getTime()),
        ),
        user: toUser(row),
        mfaEnrollmentRequired: row.mfa_required === true && row.mfa_enabled_at === null,
      }
    );
  },

  async insertApiKey(
    db: AnyKysely,
    key: Omit<ApiKey, 'revokedAt' | 'createdAt'> & { userId: string; keyHash: Buffer },
  ): Promise<ApiKey> {
    const row = await tenant(db)
      .insertInto('api_keys')
      .values({
        id: key.id,
        user_id: key.userId,
        name: key.name,
        key_hash: key.keyHash,
        prefix: key.prefix,
        last4: key.last4,
        access: key.access,
        project_ids: key.projectIds,
        expires_at: key.expiresAt,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toApiKey(row);
  },

  /** A live key (not revoked, not expired) of an active user, with that user. */
  async findActiveApiKey(
    db: AnyKysely,
    keyHash: Buffer,
  ): Promise<{ key: ApiKey; user: User; mfaEnrollmentRequired: boolean } | undefined> {
    const row = await tenant(db)
      .selectFrom('api_keys as k')
      .innerJoin('users as u', 'u.id', 'k.user_id')
      .selectAll('k')
      .select([
        'u.email',
        'u.display_name',
        'u.status',
        'u.role',
        'u.created_at as user_created_at',
        'u.mfa_enabled_at',
        mfaRequiredColumn(db),
      ])
      .where('k.key_hash', '=', keyHash)
      .where('k.revoked_at', 'is', null)
      .where((eb) => eb.or([eb('k.expires_at', 'is', null), eb('k.expires_at', '>', sql<Date>`now()`)]))
      .where('u.status', '=', 'active')
      .executeTakeFirst();
    return (
      row && {
        key: toApiKey(row),
        user: toUser({ ...row, id: row.user_id, created_at: row.user_created_at }),
        mfaEnrollmentRequired: row.mfa_required === true && row.mfa_enabled_at === null,
      }
    );
  },

  async listApiKeys(db: AnyKysely, userId: string): Promise<ApiKey[]> {
    const rows = await tenant(db)
      .selectFrom('api_keys')
      .selectAll()
      .where('user_id', '=', userId)
      .orderBy('created_at')
      .execute();
    return rows.map(toApiKey);
  },

  /** Revokes one of the user's keys; returns its hash (for the index), or undefined if not theirs. */
  async revokeApiKey(db: AnyKysely, userId: string, keyId: string): Promise<Buffer | undefined> {
    const row = await tenant(db)
      .updateTable('api_keys')
      .set({ revoked_at: sql`now()` })
      .where('id', '=', keyId)
      .where('user_id', '=', userId)
      .where('revoked_at', 'is', null)
      .returning('key_hash')
      .executeTakeFirst();
    return row && Buffer.from(row.key_hash);
  },

  /** Slides the idle expiry (never past the absolute one). */
  async touchSession(db: AnyKysely, sessionId: string, idleTimeoutMs: number): Promise<void> {
    await tenant(db)
      .updateTable('sessions')
      .set({
        last_seen_at: sql`now()`,
        idle_expires_at: sql`least(absolute_expires_at, now() + ${`${idleTimeoutMs} milliseconds`}::interval)`,
      })
      .where('id', '=', sessionId)
      .execute();
  },

  /** Revokes one session, or every live session of a user; returns the token hashes revoked. */
  async revokeSessions(db: AnyKysely, where: { sessionId: string } | { userId: string }): Promise<Buffer[]> {
    let query = tenant(db)
      .updateTable('sessions')
      .set({ revoked_at: sql`now()` })
      .where('revoked_at', 'is', null);
    query =
      'sessionId' in where
        ? query.where('id', '=', where.sessionId)
        : query.where('user_id', '=', where.userId);
    const rows = await query.returning('token_hash').execute();
    return rows.map((r) => Buffer.from(r.token_hash));
  },
};

/** The tenant's security settings (absent means the defaults). */
export async function readSecuritySettings(db: AnyKysely): Promise<{ mfaRequired: boolean }> {
  const row = await tenant(db)
    .selectFrom('settings')
    .select('value')
    .where('key', '=', 'security')
    .executeTakeFirst();
  const value = row?.value as { mfaRequired?: unknown } | undefined;
  return { mfaRequired: value?.mfaRequired === true };
}

export async function writeSecuritySettings(
  db: AnyKysely,
  settings: { mfaRequired: boolean },
): Promise<void> {
  await tenant(db)
    .insertInto('settings')
    .values({ key: 'security', value: JSON.stringify(settings) })
    .onConflict((oc) =>
      oc.column('key').doUpdateSet({ value: JSON.stringify(settings), updated_at: sql`now()` }),
    )
    .execute();
}

/** The tenant's MFA requirement as a column, read in the same query as the credential. */
function mfaRequiredColumn(db: AnyKysely) {
  return tenant(db)
    .selectFrom('settings')
    .select(sql<boolean>`(value->>'mfaRequired')::boolean`.as('required'))
    .where('key', '=', 'security')
    .as('mfa_required');
}

function tenant(db: AnyKysely): Kysely<TenantTables> {
  return db as Kysely<TenantTables>;
}

function toApiKey(row: Selectable<ApiKeysTable>): ApiKey {
  return {
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    last4: row.last4,
    access: row.access,
    projectIds: row.project_ids,
    expiresAt: row.expires_at === null ? null : new Date(row.expires_at),
    revokedAt: row.revoked_at === null ? null : new Date(row.revoked_at),
    createdAt: new Date(row.created_at),
  };
}

function toUser(
  row: Pick<Selectable<UsersTable>, 'id' | 'email' | 'display_name' | 'status' | 'role' | 'created_at'>,
): User {
  return {
    id: row.id,
    email: row.email,
    displayName: row.display_name,
    status: row.status,
    role: row.role,
    createdAt: new Date(row.created_at),
  };
}
