import type { Kysely, Selectable } from 'kysely';
import type { AnyKysely } from '../../db/database.ts';
import type { CollectionPoliciesTable, TenantTables } from '../../db/tenant-tables.ts';

/** One version of a collection's policy. */
export interface CollectionPolicy {
  projectId: string;
  collection: string;
  version: number;
  sensitive: string[];
  personal: string[];
  createdBy: string;
  createdAt: Date;
}

/** Collection policies of one tenant: every method takes the tenant-scoped handle from `withTenant`. */
export const collectionPolicyRepository = {
  /**
   * Locks the project row FOR UPDATE until the transaction ends: record writes take a KEY SHARE lock
   * on it before reading the policy, so while a policy change re-encrypts a collection no record of
   * the project is written with the old policy. False when the project does not exist.
   */
  async lockProject(db: AnyKysely, projectId: string): Promise<boolean> {
    const row = await tenant(db)
      .selectFrom('projects')
      .select('id')
      .where('id', '=', projectId)
      .forUpdate()
      .executeTakeFirst();
    return row !== undefined;
  },

  async findCurrent(
    db: AnyKysely,
    projectId: string,
    collection: string,
  ): Promise<CollectionPolicy | undefined> {
    const row = await tenant(db)
      .selectFrom('collection_policies')
      .selectAll()
      .where('project_id', '=', projectId)
      .where('collection', '=', collection)
      .orderBy('version', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row && toPolicy(row);
  },

  /** Newest first, older than `beforeVersion` when given. */
  async listVersions(
    db: AnyKysely,
    projectId: string,
    collection: string,
    options: { limit: number; beforeVersion?: number | undefined },
  ): Promise<CollectionPolicy[]> {
    let query = tenant(db)
      .selectFrom('collection_policies')
      .selectAll()
      .where('project_id', '=', projectId)
      .where('collection', '=', collection);
    if (options.beforeVersion !== undefined) query = query.where('version', '<', options.beforeVersion);
    const rows = await query.orderBy('version', 'desc').limit(options.limit).execute();
    return rows.map(toPolicy);
  },

  /** Writes a new version; the primary key makes two writers of the same version impossible. */
  async insert(db: AnyKysely, policy: Omit<CollectionPolicy, 'createdAt'>): Promise<CollectionPolicy> {
    const row = await tenant(db)
      .insertInto('collection_policies')
      .values({
        project_id: policy.projectId,
        collection: policy.collection,
        version: policy.version,
        sensitive: policy.sensitive,
        personal: policy.personal,
        created_by: policy.createdBy,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toPolicy(row);
  },
};

function tenant(db: AnyKysely): Kysely<TenantTables> {
  return db as Kysely<TenantTables>;
}

function toPolicy(row: Selectable<CollectionPoliciesTable>): CollectionPolicy {
  return {
    projectId: row.project_id,
    collection: row.collection,
    version: row.version,
    sensitive: row.sensitive,
    personal: row.personal,
    createdBy: row.created_by,
    createdAt: new Date(row.created_at),
  };
}
