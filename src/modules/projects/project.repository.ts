import type { Kysely, Selectable } from 'kysely';
import { sql } from 'kysely';
import type { AnyKysely } from '../../db/database.ts';
import { cachedStatement } from '../../db/statement-cache.ts';
import type { ProjectsTable, TenantTables } from '../../db/tenant-tables.ts';
import type { ProjectRole } from '../access/policy.ts';

export interface Project {
  id: string;
  name: string;
  createdBy: string;
  createdAt: Date;
  updatedAt: Date;
}

export interface ProjectMember {
  userId: string;
  email: string;
  displayName: string;
  role: ProjectRole;
  grantedBy: string;
  grantedAt: Date;
}

/** Projects and memberships of one tenant; every method takes the handle from `withTenant`. */
export const projectRepository = {
  async insert(db: AnyKysely, project: { id: string; name: string; createdBy: string }): Promise<Project> {
    const row = await tenant(db)
      .insertInto('projects')
      .values({ id: project.id, name: project.name, created_by: project.createdBy })
      .returning(projectColumns)
      .executeTakeFirstOrThrow();
    return toProject(row);
  },

  /**
   * Every project (`onlyMember` false) or only those `userId` belongs to; each with `userId`'s role
   * in it (null where they have none).
   */
  async list(
    db: AnyKysely,
    userId: string,
    onlyMember: boolean,
  ): Promise<Array<Project & { role: ProjectRole | null }>> {
    let query = tenant(db)
      .selectFrom('projects as p')
      .leftJoin('project_members as m', (join) =>
        join.onRef('m.project_id', '=', 'p.id').on('m.user_id', '=', userId),
      )
      .select(projectColumns.map((column) => `p.${column}` as const))
      .select('m.role')
      .orderBy('p.created_at')
      .orderBy('p.id');
    if (onlyMember) query = query.where('m.user_id', '=', userId);
    const rows = await query.execute();
    return rows.map((row) => ({ ...toProject(row), role: row.role ?? null }));
  },

  async rename(db: AnyKysely, id: string, name: string): Promise<Project> {
    const row = await tenant(db)
      .updateTable('projects')
      .set({ name, updated_at: sql`now()` })
      .where('id', '=', id)
      .returning(projectColumns)
      .executeTakeFirstOrThrow();
    return toProject(row);
  },

  async delete(db: AnyKysely, id: string): Promise<void> {
    await tenant(db).deleteFrom('projects').where('id', '=', id).execute();
  },

  /** The project and `userId`'s role in it (undefined when not a member), in one query. */
  async findWithRole(
    db: AnyKysely,
    projectId: string,
    userId: string,
  ): Promise<{ project: Project; role: ProjectRole | undefined } | undefined> {
    const [row] = await readWithRole(db, { projectId, userId });
    return row && { project: toProject(row), role: row.role ?? undefined };
  },

  async listMembers(db: AnyKysely, projectId: string): Promise<ProjectMember[]> {
    const rows = await tenant(db)
      .selectFrom('project_members as m')
      .innerJoin('users as u', 'u.id', 'm.user_id')
      .select(['m.user_id', 'u.email', 'u.display_name', 'm.role', 'm.granted_by', 'm.granted_at'])
      .where('m.project_id', '=', projectId)
      .orderBy('u.email')
      .execute();
    return rows.map((r) => ({
      userId: r.user_id,
      email: r.email,
      displayName: r.display_name,
      role: r.role,
      grantedBy: r.granted_by,
      grantedAt: new Date(r.granted_at),
    }));
  },

  async upsertMember(
    db: AnyKysely,
    member: { projectId: string; userId: string; role: ProjectRole; grantedBy: string },
  ): Promise<void> {
    await tenant(db)
      .insertInto('project_members')
      .values({
        project_id: member.projectId,
        user_id: member.userId,
        role: member.role,
        granted_by: member.grantedBy,
      })
      .onConflict((oc) =>
        oc
          .columns(['project_id', 'user_id'])
          .doUpdateSet({ role: member.role, granted_by: member.grantedBy, granted_at: sql`now()` }),
      )
      .execute();
  },

  async deleteMember(db: AnyKysely, projectId: string, userId: string): Promise<boolean> {
    const result = await tenant(db)
      .deleteFrom('project_members')
      .where('project_id', '=', projectId)
      .where('user_id', '=', userId)
      .executeTakeFirst();
    return result.numDeletedRows > 0n;
  },

  async userExists(db: AnyKysely, userId: string): Promise<boolean> {
    const row = await tenant(db)
      .selectFrom('users')
      .select('id')
      .where('id', '=', userId)
      .where('status', '<>', 'disabled')
      .executeTakeFirst();
    return row !== undefined;
  },
};

function tenant(db: AnyKysely): Kysely<TenantTables> {
  return db as Kysely<TenantTables>;
}

function toProject(row: Selectable<ProjectsTable>): Project {
  return {
    id: row.id,
    name: row.name,
    createdBy: row.created_by,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
  };
}

/** A project's columns, named rather than `*` (prepared statements, see db/prepared-statements.ts). */
const projectColumns = ['id', 'name', 'created_by', 'created_at', 'updated_at'] as const;

/** The statement behind every project-scoped authorization, compiled once per tenant schema. */
const readWithRole = cachedStatement((db, p: { projectId: string; userId: string }) =>
  tenant(db)
    .selectFrom('projects as p')
    .leftJoin('project_members as m', (join) =>
      join.onRef('m.project_id', '=', 'p.id').on('m.user_id', '=', p.userId),
    )
    .select(projectColumns.map((column) => `p.${column}` as const))
    .select('m.role')
    .where('p.id', '=', p.projectId),
);
