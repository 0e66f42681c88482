import type { Migration } from '../../migrator.ts';
import { createAuditChain, dropAuditChain } from '../audit-log-ddl.ts';

/**
 * The tenant's audit chain: every entry hashes its predecessor (modules/audit), and signed
 * checkpoints seal it. Append-only: see audit-log-ddl.ts and the grants in tenant-schemas.ts.
 */
export const createAuditLog: Migration = {
  name: '20261123100000-create-audit-log',
  async up({ trx, schema }) {
    await createAuditChain(trx, schema, { platform: false });
  },
  async down({ trx, schema }) {
    await dropAuditChain(trx, schema);
  },
};
