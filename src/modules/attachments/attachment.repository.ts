import { type Kysely, type Selectable, sql } from 'kysely';
import type { AnyKysely } from '../../db/database.ts';
import type { AttachmentVersionsTable, TenantTables } from '../../db/tenant-tables.ts';
import type { ProjectRole } from '../access/policy.ts';

/** One immutable version of an attachment: the object that holds it and what it held. */
export interface AttachmentVersion {
  attachmentId: string;
  version: number;
  objectKey: string;
  filename: string;
  contentType: string;
  sizeBytes: number;
  sha256: Buffer;
  chunkSizeBytes: number;
  keyVersion: number;
  createdBy: string;
  createdAt: Date;
}

/** An attachment as the API shows it: its current version's file, plus who and when. */
export interface Attachment {
  id: string;
  projectId: string;
  recordId: string | null;
  version: number;
  filename: string;
  contentType: string;
  sizeBytes: number;
  sha256: string;
  createdBy: string;
  updatedBy: string;
  createdAt: Date;
  updatedAt: Date;
}

/** A version's object to store, before it is committed. */
export interface NewVersion {
  objectKey: string;
  filename: string;
  contentType: string;
  sizeBytes: number;
  sha256: Buffer;
  chunkSizeBytes: number;
  keyVersion: number;
}

/** Attachments of one tenant: every method takes the tenant-scoped handle from `withTenant`. */
export const attachmentRepository = {
  async insert(
    db: AnyKysely,
    input: { id: string; projectId: string; recordId: string | null; userId: string; file: NewVersion },
  ): Promise<void> {
    await tenant(db)
      .insertInto('attachments')
      .values({
        id: input.id,
        project_id: input.projectId,
        record_id: input.recordId,
        created_by: input.userId,
        updated_by: input.userId,
      })
      .execute();
    await insertVersion(db, input.id, 1, input.projectId, input.userId, input.file);
  },

  /**
   * Makes `file` the next version if the attachment is live and at `expectedVersion` (undefined:
   * any), retiring the version it replaces. False when it is gone or was changed meanwhile.
   */
  async addVersion(
    db: AnyKysely,
    input: {
      id: string;
      projectId: string;
      userId: string;
      expectedVersion: number | undefined;
      file: NewVersion;
    },
  ): Promise<boolean> {
    let query = tenant(db)
      .updateTable('attachments')
      .set({ version: sql`version + 1`, updated_by: input.userId, updated_at: sql`now()` })
      .where('id', '=', input.id)
      .where('project_id', '=', input.projectId)
      .where('deleted_at', 'is', null);
    if (input.expectedVersion !== undefined) query = query.where('version', '=', input.expectedVersion);
    const row = await query.returning('version').executeTakeFirst();
    if (!row) return false;
    await retire(db).where('attachment_id', '=', input.id).where('version', '<', row.version).execute();
    await insertVersion(db, input.id, row.version, input.projectId, input.userId, input.file);
    return true;
  },

  /** Tombstones a live attachment at `expectedVersion` (undefined: any); false when there is none. */
  async tombstone(
    db: AnyKysely,
    input: { id: string; projectId: string; userId: string; expectedVersion: number | undefined },
  ): Promise<boolean> {
    let query = tenant(db)
      .updateTable('attachments')
      .set({ deleted_at: sql`now()`, updated_by: input.userId, updated_at: sql`now()` })
      .where('id', '=', input.id)
      .where('project_id', '=', input.projectId)
      .where('deleted_at', 'is', null);
    if (input.expectedVersion !== undefined) query = query.where('version', '=', input.expectedVersion);
    const result = await query.executeTakeFirst();
    if (result.numUpdatedRows === 0n) return false;
    await retire(db).where('attachment_id', '=', input.id).execute();
    return true;
  },

  /** Starts the restore-window clock for every object of a project about to be deleted. */
  async retireProject(db: AnyKysely, projectId: string): Promise<void> {
    await retire(db).where('project_id', '=', projectId).execute();
  },

  /**
   * For a read in one round trip: whether the project exists, the caller's role in it, and the live
   * attachment with its current version if it is there. Undefined when the project is not.
   */
  async findWithAccess(
    db: AnyKysely,
    projectId: string,
    attachmentId: string,
    userId: string,
  ): Promise<
    | {
        role: ProjectRole | undefined;
        found: { attachment: Attachment; file: AttachmentVersion } | undefined;
      }
    | undefined
  > {
    const row = await tenant(db)
      .selectFrom('projects as p')
      .leftJoin('project_members as m', (join) =>
        join.onRef('m.project_id', '=', 'p.id').on('m.user_id', '=', userId),
      )
      .leftJoin('attachments as a', (join) =>
        join.onRef('a.project_id', '=', 'p.id').on('a.id', '=', attachmentId).on('a.deleted_at', 'is', null),
      )
      .leftJoin('attachment_versions as v', (join) =>
        join.onRef('v.attachment_id', '=', 'a.id').onRef('v.version', '=', 'a.version'),
      )
      .select(['m.role', ...currentFileColumns])
      .where('p.id', '=', projectId)
      .executeTakeFirst();
    if (!row) return undefined;
    if (row.id === null || row.attachment_id === null)
      return { role: row.role ?? undefined, found: undefined };
    const file = toVersion(row as VersionRow);
    const attachment = toAttachment(
      {
        id: row.id,
        project_id: projectId,
        record_id: row.record_id,
        a_created_by: row.a_created_by!,
        updated_by: row.updated_by!,
        a_created_at: row.a_created_at!,
        updated_at: row.updated_at!,
      },
      file,
    );
    return { role: row.role ?? undefined, found: { attachment, file } };
  },

  async find(db: AnyKysely, projectId: string, attachmentId: string): Promise<Attachment | undefined> {
    const [found] = await listQuery(db, projectId).where('a.id', '=', attachmentId).execute();
    return found && toAttachment(found, toVersion(found));
  },

  async list(
    db: AnyKysely,
    projectId: string,
    options: { recordId?: string | undefined; limit: number; afterSeq?: string | undefined },
  ): Promise<Array<Attachment & { seq: string }>> {
    let query = listQuery(db, projectId);
    if (options.recordId !== undefined) query = query.where('a.record_id', '=', options.recordId);
    if (options.afterSeq !== undefined) query = query.where('a.seq', '>', options.afterSeq);
    const rows = await query.orderBy('a.seq').limit(options.limit).execute();
    return rows.map((row) => ({ ...toAttachment(row, toVersion(row)), seq: row.seq }));
  },

  /** Every version of a live attachment, newest first. */
  async listVersions(db: AnyKysely, attachmentId: string): Promise<AttachmentVersion[]> {
    const rows = await tenant(db)
      .selectFrom('attachment_versions')
      .selectAll()
      .where('attachment_id', '=', attachmentId)
      .orderBy('version', 'desc')
      .execute();
    return rows.map(toVersion);
  },

  async recordExists(db: AnyKysely, projectId: string, recordId: string): Promise<boolean> {
    const row = await tenant(db)
      .selectFrom('records')
      .select('id')
      .where('id', '=', recordId)
      .where('project_id', '=', projectId)
      .executeTakeFirst();
    return row !== undefined;
  },

  /** Which of `objectKeys` the ledger knows (purged versions included): the rest are orphans. */
  async knownObjectKeys(db: AnyKysely, objectKeys: readonly string[]): Promise<Set<string>> {
    if (objectKeys.length === 0) return new Set();
    const rows = await tenant(db)
      .selectFrom('attachment_versions')
      .select('object_key')
      .where('object_key', 'in', objectKeys)
      .execute();
    return new Set(rows.map((row) => row.object_key));
  },

  /** Versions retired before `before` whose objects are still stored, oldest first. */
  async retiredBefore(db: AnyKysely, before: Date, limit: number): Promise<string[]> {
    const rows = await tenant(db)
      .selectFrom('attachment_versions')
      .select('object_key')
      .where('retired_at', '<', before)
      .where('purged_at', 'is', null)
      .orderBy('retired_at')
      .limit(limit)
      .execute();
    return rows.map((row) => row.object_key);
  },

  async markPurged(db: AnyKysely, objectKeys: readonly string[]): Promise<void> {
    if (objectKeys.length === 0) return;
    await tenant(db)
      .updateTable('attachment_versions')
      .set({ purged_at: sql`now()` })
      .where('object_key', 'in', objectKeys)
      .execute();
  },
};

/** An attachment (`a`) joined to its current version (`v`): what both reads return. */
const currentFileColumns = [
  'a.id',
  'a.record_id',
  'a.created_by as a_created_by',
  'a.updated_by',
  'a.created_at as a_created_at',
  'a.updated_at',
  'v.attachment_id',
  'v.version',
  'v.object_key',
  'v.filename',
  'v.content_type',
  'v.size_bytes',
  'v.sha256',
  'v.chunk_size_bytes',
  'v.key_version',
  'v.created_by',
  'v.created_at',
] as const;

function listQuery(db: AnyKysely, projectId: string) {
  return tenant(db)
    .selectFrom('attachments as a')
    .innerJoin('attachment_versions as v', (join) =>
      join.onRef('v.attachment_id', '=', 'a.id').onRef('v.version', '=', 'a.version'),
    )
    .select(['a.seq', 'a.project_id', ...currentFileColumns])
    .where('a.project_id', '=', projectId)
    .where('a.deleted_at', 'is', null);
}

function retire(db: AnyKysely) {
  return tenant(db)
    .updateTable('attachment_versions')
    .set({ retired_at: sql`now()` })
    .where('retired_at', 'is', null);
}

async function insertVersion(
  db: AnyKysely,
  attachmentId: string,
  version: number,
  projectId: string,
  userId: string,
  file: NewVersion,
): Promise<void> {
  await tenant(db)
    .insertInto('attachment_versions')
    .values({
      attachment_id: attachmentId,
      version,
      project_id: projectId,
      object_key: file.objectKey,
      filename: file.filename,
      content_type: file.contentType,
      size_bytes: file.sizeBytes,
      sha256: file.sha256,
      chunk_size_bytes: file.chunkSizeBytes,
      key_version: file.keyVersion,
      created_by: userId,
    })
    .execute();
}

function tenant(db: AnyKysely): Kysely<TenantTables> {
  return db as Kysely<TenantTables>;
}

type VersionRow = Pick<
  Selectable<AttachmentVersionsTable>,
  | 'attachment_id'
  | 'version'
  | 'object_key'
  | 'filename'
  | 'content_type'
  | 'size_bytes'
  | 'sha256'
  | 'chunk_size_bytes'
  | 'key_version'
  | 'created_by'
  | 'created_at'
>;

function toVersion(row: VersionRow): AttachmentVersion {
  return {
    attachmentId: row.attachment_id,
    version: row.version,
    objectKey: row.object_key,
    filename: row.filename,
    contentType: row.content_type,
    sizeBytes: Number(row.size_bytes),
    sha256: Buffer.from(row.sha256),
    chunkSizeBytes: row.chunk_size_bytes,
    keyVersion: row.key_version,
    createdBy: row.created_by,
    createdAt: new Date(row.created_at),
  };
}

function toAttachment(
  row: {
    id: string;
    project_id: string;
    record_id: string | null;
    a_created_by: string;
    updated_by: string;
    a_created_at: Date | string;
    updated_at: Date | string;
  },
  file: AttachmentVersion,
): Attachment {
  return {
    id: row.id,
    projectId: row.project_id,
    recordId: row.record_id,
    version: file.version,
    filename: file.filename,
    contentType: file.contentType,
    sizeBytes: file.sizeBytes,
    sha256: file.sha256.toString('hex'),
    createdBy: row.a_created_by,
    updatedBy: row.updated_by,
    createdAt: new Date(row.a_created_at),
    updatedAt: new Date(row.updated_at),
  };
}
