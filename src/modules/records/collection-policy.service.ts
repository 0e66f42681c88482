import type { AnyKysely } from '../../db/database.ts';
import type { WithTenant } from '../../db/with-tenant.ts';
import { defineError } from '../../platform/errors.ts';
import { accessErrors } from '../access/policy.ts';
import type { TenantKeyService } from '../keys/tenant-keys.service.ts';
import { authorizeInProject, type UserAccess } from '../projects/project.service.ts';
import { type CollectionPolicy, collectionPolicyRepository } from './collection-policy.repository.ts';
import { recordRepository } from './record.repository.ts';
import { acceptCollection, recordErrors } from './record-data.ts';
import { fieldNamePattern } from './record-filter.ts';
import { type FieldKeyring, openFields, sealFields, withFieldKeys } from './sensitive-fields.ts';

export const maxPolicyFields = 100;

/** Records re-encrypted per statement when a policy change marks or unmarks fields. */
export const resealBatchSize = 100;

export const maxPolicyVersionsPage = 100;

export const policyErrors = {
  invalidPolicy: defineError(
    'invalid_policy',
    'invalid',
    `A collection policy lists at most ${maxPolicyFields} sensitive and ${maxPolicyFields} personal fields, each a top-level field name ([A-Za-z_][A-Za-z0-9_]{0,62}) at most once.`,
    (reason: string) => ({ message: `invalid collection policy: ${reason}` }),
  ),
};

/** The current policy; version 0 (never set: nothing sensitive or personal) has no author or date. */
export type CurrentPolicy =
  | CollectionPolicy
  | (Omit<CollectionPolicy, 'createdBy' | 'createdAt' | 'version'> & {
      version: 0;
      createdBy: null;
      createdAt: null;
    });

/** An If-Match header: a version, or `*` (version undefined). */
export interface IfMatch {
  version: number | undefined;
}

/**
 * Collection policies: which top-level fields of a collection's records are `sensitive` (stored
 * encrypted with the tenant's data key, returned decrypted, never filtered or sorted on) and which
 * are `personal` (recorded for the anonymizer and GDPR export). Project admins (`project.update`) set
 * them; whoever reads records (`records.read`) reads them. Every change is a new version, kept.
 *
 * A change re-encrypts in the same transaction: values of newly sensitive fields are encrypted and
 * values of fields no longer sensitive decrypted, in batches of `resealBatchSize` records, so what is
 * stored always matches the current policy and nothing is ever half-converted. The transaction holds
 * the project row FOR UPDATE, so record writes in the project wait for it (see record.repository.ts).
 */
export class CollectionPolicyService {
  readonly #withTenant: WithTenant;
  readonly #keys: TenantKeyService;

  constructor(deps: { withTenant: WithTenant; keys: TenantKeyService }) {
    this.#withTenant = deps.withTenant;
    this.#keys = deps.keys;
  }

  async get(principal: UserAccess, projectId: string, collection: string): Promise<CurrentPolicy> {
    const name = acceptCollection(collection);
    return this.#withTenant(
      principal.tenantId,
      async (scope) => {
        await authorizeInProject(scope.db, principal, projectId, 'records.read');
        const current = await collectionPolicyRepository.findCurrent(scope.db, projectId, name);
        return current ?? emptyPolicy(projectId, name);
      },
      { readOnly: true },
    );
  }

  /** Versions newest first; `beforeVersion` continues a listing. */
  async listVersions(
    principal: UserAccess,
    projectId: string,
    collection: string,
    options: { limit: number; beforeVersion?: number | undefined },
  ): Promise<CollectionPolicy[]> {
    const name = acceptCollection(collection);
    const limit = Math.min(Math.max(1, Math.floor(options.limit)), maxPolicyVersionsPage);
    return this.#withTenant(
      principal.tenantId,
      async (scope) => {
        await authorizeInProject(scope.db, principal, projectId, 'records.read');
        return collectionPolicyRepository.listVersions(scope.db, projectId, name, {
          limit,
          beforeVersion: options.beforeVersion,
        });
      },
      { readOnly: true },
    );
  }

  /**
   * Writes the next version of the policy. Without If-Match only while there is none yet (else
   * `precondition_required`); with If-Match, only while it names the current version, or `*` while
   * there is one (else `precondition_failed`), as for records.
   */
  async put(
    principal: UserAccess,
    projectId: string,
    collection: string,
    ifMatch: IfMatch | undefined,
    input: { sensitive: readonly string[]; personal: readonly string[] },
  ): Promise<{ policy: CollectionPolicy; resealedRecords: number }> {
    const name = acceptCollection(collection);
    const sensitive = acceptFieldList(input.sensitive, 'sensitive');
    const personal = acceptFieldList(input.personal, 'personal');
    return withFieldKeys(this.#keys, principal.tenantId, (keyring) =>
      this.#withTenant(principal.tenantId, async (scope) => {
        // Authorize before locking, so a caller who may not change the policy never holds the lock.
        await authorizeInProject(scope.db, principal, projectId, 'project.update');
        if (!(await collectionPolicyRepository.lockProject(scope.db, projectId)))
          throw accessErrors.notFound();
        const current = await collectionPolicyRepository.findCurrent(scope.db, projectId, name);
        checkPrecondition(current?.version, ifMatch);
        const policy = await collectionPolicyRepository.insert(scope.db, {
          projectId,
          collection: name,
          version: (current?.version ?? 0) + 1,
          sensitive,
          personal,
          createdBy: principal.userId,
        });
        const before = current?.sensitive ?? [];
        const resealedRecords = await reseal(scope.db, keyring, projectId, name, {
          seal: sensitive.filter((field) => !before.includes(field)),
          open: before.filter((field) => !sensitive.includes(field)),
        });
        return { policy, resealedRecords };
      }),
    );
  }
}

/** Encrypts newly sensitive fields and decrypts formerly sensitive ones, batch by batch. */
async function reseal(
  db: AnyKysely,
  keyring: FieldKeyring,
  projectId: string,
  collection: string,
  change: { seal: readonly string[]; open: readonly string[] },
): Promise<number> {
  const fields = [...change.seal, ...change.open];
  if (fields.length === 0) return 0;
  let afterSeq = '0';
  let count = 0;
  for (;;) {
    const batch = await recordRepository.listFieldValues(
      db,
      projectId,
      collection,
      fields,
      afterSeq,
      resealBatchSize,
    );
    if (batch.length === 0) return count;
    const patches = new Map<string, Record<string, unknown>>();
    for (const row of batch) {
      const opened = openFields(keyring, row.id, row.values, change.open);
      patches.set(row.id, sealFields(keyring, row.id, opened, change.seal));
    }
    await recordRepository.replaceFields(db, projectId, patches);
    count += batch.length;
    afterSeq = batch.at(-1)!.seq;
  }
}

function checkPrecondition(currentVersion: number | undefined, ifMatch: IfMatch | undefined): void {
  if (currentVersion === undefined) {
    // Nothing to match yet: If-Match (even *) cannot hold (RFC 9110 §13.1.1).
    if (ifMatch !== undefined) throw recordErrors.preconditionFailed();
    return;
  }
  if (ifMatch === undefined) throw recordErrors.preconditionRequired();
  if (ifMatch.version !== undefined && ifMatch.version !== currentVersion) {
    throw recordErrors.preconditionFailed();
  }
}

function acceptFieldList(fields: readonly string[], which: string): string[] {
  if (fields.length > maxPolicyFields) {
    throw policyErrors.invalidPolicy(`at most ${maxPolicyFields} ${which} fields`);
  }
  const seen = new Set<string>();
  for (const field of fields) {
    if (!fieldNamePattern.test(field)) {
      throw policyErrors.invalidPolicy(
        `${which} field ${JSON.stringify(field.slice(0, 80))} is not a field name`,
      );
    }
    if (seen.has(field)) throw policyErrors.invalidPolicy(`${which} lists ${field} twice`);
    seen.add(field);
  }
  return [...fields];
}

function emptyPolicy(projectId: string, collection: string): CurrentPolicy {
  return {
    projectId,
    collection,
    version: 0,
    sensitive: [],
    personal: [],
    createdBy: null,
    createdAt: null,
  };
}
