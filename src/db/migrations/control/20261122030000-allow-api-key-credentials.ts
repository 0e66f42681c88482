import { sql } from 'kysely';
import type { Migration } from '../../migrator.ts';

/** The credentials index now also points API keys at their tenant (expand-only). */
export const allowApiKeyCredentials: Migration = {
  name: '20261122030000-allow-api-key-credentials',
  async up({ trx, schema }) {
    await sql`alter table ${sql.id(schema, 'credentials')} drop constraint credentials_kind_check`.execute(
      trx,
    );
    await sql`alter table ${sql.id(schema, 'credentials')} add constraint credentials_kind_check check (kind in ('session', 'api_key'))`.execute(
      trx,
    );
  },
  async down({ trx, schema }) {
    await sql`delete from ${sql.id(schema, 'credentials')} where kind = 'api_key'`.execute(trx);
    await sql`alter table ${sql.id(schema, 'credentials')} drop constraint credentials_kind_check`.execute(
      trx,
    );
    await sql`alter table ${sql.id(schema, 'credentials')} add constraint credentials_kind_check check (kind in ('session'))`.execute(
      trx,
    );
  },
};
