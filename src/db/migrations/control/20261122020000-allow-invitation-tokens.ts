import { sql } from 'kysely';
import type { Migration } from '../../migrator.ts';

/** One-time tokens may now also be invitations (expand-only: older code still writes owner_setup). */
export const allowInvitationTokens: Migration = {
  name: '20261122020000-allow-invitation-tokens',
  async up({ trx, schema }) {
    await sql`alter table ${sql.id(schema, 'setup_tokens')} drop constraint setup_tokens_purpose_check`.execute(
      trx,
    );
    await sql`alter table ${sql.id(schema, 'setup_tokens')} add constraint setup_tokens_purpose_check check (purpose in ('owner_setup', 'invitation'))`.execute(
      trx,
    );
  },
  async down({ trx, schema }) {
    await sql`delete from ${sql.id(schema, 'setup_tokens')} where purpose = 'invitation'`.execute(trx);
    await sql`alter table ${sql.id(schema, 'setup_tokens')} drop constraint setup_tokens_purpose_check`.execute(
      trx,
    );
    await sql`alter table ${sql.id(schema, 'setup_tokens')} add constraint setup_tokens_purpose_check check (purpose in ('owner_setup'))`.execute(
      trx,
    );
  },
};
