import { sql } from 'kysely';
import type { Migration } from '../../migrator.ts';

/**
 * Attachments: files of a project, each a chain of immutable versions. `attachments` is what the API
 * names (current version, optional record link, tombstone); `attachment_versions` is the ledger of
 * every object ever written for the tenant. The ledger has no foreign key to `attachments` or
 * `projects` on purpose: deleting a project (or a tombstoned attachment) must not forget objects a
 * point-in-time restore may still need. A version leaves the ledger's live set when it is retired
 * (superseded, tombstoned, or its project deleted); its object is purged once the retirement has
 * left the restore window.
 */
export const createAttachments: Migration = {
  name: '20261123010000-create-attachments',
  async up({ db }) {
    await db.schema
      .createTable('attachments')
      .addColumn('id', 'uuid', (c) => c.primaryKey())
      // Creation order, exact and unique: what listings sort and resume by.
      .addColumn('seq', 'bigint', (c) => c.notNull().generatedAlwaysAsIdentity())
      .addColumn('project_id', 'uuid', (c) => c.notNull().references('projects.id').onDelete('cascade'))
      .addColumn('record_id', 'uuid', (c) => c.references('records.id').onDelete('set null'))
      .addColumn('version', 'integer', (c) => c.notNull().defaultTo(1).check(sql`version >= 1`))
      .addColumn('created_by', 'uuid', (c) => c.notNull().references('users.id'))
      .addColumn('updated_by', 'uuid', (c) => c.notNull().references('users.id'))
      .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      // A tombstone: the attachment is gone for the API; its versions wait out the restore window.
      .addColumn('deleted_at', 'timestamptz')
      .execute();
    await db.schema
      .createIndex('attachments_by_project')
      .on('attachments')
      .columns(['project_id', 'seq'])
      .where(sql.ref('deleted_at'), 'is', null)
      .execute();
    await db.schema
      .createIndex('attachments_by_record')
      .on('attachments')
      .columns(['record_id'])
      .where(sql.ref('record_id'), 'is not', null)
      .execute();
    await db.schema
      .createTable('attachment_versions')
      .addColumn('attachment_id', 'uuid', (c) => c.notNull())
      .addColumn('version', 'integer', (c) => c.notNull().check(sql`version >= 1`))
      .addColumn('project_id', 'uuid', (c) => c.notNull())
      // Server-generated, relative to the tenant's prefix in the object store; never from a filename.
      .addColumn('object_key', 'text', (c) => c.notNull().unique())
      .addColumn('filename', 'text', (c) => c.notNull().check(sql`octet_length(filename) between 1 and 255`))
      .addColumn('content_type', 'text', (c) => c.notNull().check(sql`length(content_type) <= 255`))
      .addColumn('size_bytes', 'bigint', (c) => c.notNull().check(sql`size_bytes >= 0`))
      // SHA-256 of the plaintext, checked again on every full read.
      .addColumn('sha256', 'bytea', (c) => c.notNull().check(sql`octet_length(sha256) = 32`))
      .addColumn('chunk_size_bytes', 'integer', (c) => c.notNull())
      // Which version of the tenant data key sealed the object.
      .addColumn('key_version', 'integer', (c) => c.notNull())
      .addColumn('created_by', 'uuid', (c) => c.notNull())
      .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      .addColumn('retired_at', 'timestamptz')
      .addColumn('purged_at', 'timestamptz')
      .addPrimaryKeyConstraint('attachment_versions_pk', ['attachment_id', 'version'])
      .execute();
    await db.schema
      .createIndex('attachment_versions_retired')
      .on('attachment_versions')
      .columns(['retired_at'])
      .where(sql<boolean>`retired_at is not null and purged_at is null`)
      .execute();
  },
  async down({ db }) {
    await db.schema.dropTable('attachment_versions').execute();
    await db.schema.dropTable('attachments').execute();
  },
};
