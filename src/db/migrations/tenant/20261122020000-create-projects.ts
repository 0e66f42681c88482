import { sql } from 'kysely';
import type { Migration } from '../../migrator.ts';

/** Projects and who may do what in each (project roles granted by account admins or project admins). */
export const createProjects: Migration = {
  name: '20261122020000-create-projects',
  async up({ db }) {
    await db.schema
      .createTable('projects')
      .addColumn('id', 'uuid', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('created_by', 'uuid', (c) => c.notNull().references('users.id'))
      .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      .execute();
    await db.schema
      .createTable('project_members')
      .addColumn('project_id', 'uuid', (c) => c.notNull().references('projects.id').onDelete('cascade'))
      .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
      .addColumn('role', 'text', (c) =>
        c.notNull().check(sql`role in ('project_admin', 'contributor', 'viewer')`),
      )
      .addColumn('granted_by', 'uuid', (c) => c.notNull().references('users.id'))
      .addColumn('granted_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      .addPrimaryKeyConstraint('project_members_pk', ['project_id', 'user_id'])
      .execute();
    await db.schema.createIndex('project_members_user').on('project_members').column('user_id').execute();
  },
  async down({ db }) {
    await db.schema.dropTable('project_members').execute();
    await db.schema.dropTable('projects').execute();
  },
};
