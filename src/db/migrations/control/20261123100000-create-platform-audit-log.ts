import type { Migration } from '../../migrator.ts';
import { createAuditChain, dropAuditChain } from '../audit-log-ddl.ts';

/** The platform audit chain (staff and control-plane events), `control.audit_log`; see audit-log-ddl.ts. */
export const createPlatformAuditLog: Migration = {
  name: '20261123100000-create-platform-audit-log',
  async up({ trx, schema }) {
    await createAuditChain(trx, schema, { platform: true });
  },
  async down({ trx, schema }) {
    await dropAuditChain(trx, schema);
  },
};
