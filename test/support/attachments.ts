import { createHash } from 'node:crypto';
import { encryptBuffer } from '../../src/crypto/stream-aead.ts';
import type { Core } from '../../src/main/compose.ts';
import { objectAad } from '../../src/modules/attachments/attachment.service.ts';
import { newId, newTimeOrderedId } from '../../src/platform/ids.ts';
import { scopeObjectStore } from '../../src/ports/object-store.port.ts';

/**
 * Attachment versions written straight into a tenant's tables (no request path): an owner, a
 * project and one attachment, and `upload(version, text)`, which seals the text into the attachment
 * store as the service would, retires the current version and records the new one. Returns the
 * object key of each version uploaded.
 */
export async function seedAttachment(
  core: Core,
  tenantId: string,
  options: { filename?: string; contentType?: string; chunkSizeBytes?: number } = {},
): Promise<{
  userId: string;
  projectId: string;
  attachmentId: string;
  upload(version: number, text: string): Promise<string>;
}> {
  const key = await core.keys.getDataKey(tenantId);
  const store = scopeObjectStore(core.objects, `tenants/${tenantId}/`);
  const chunkSizeBytes = options.chunkSizeBytes ?? 65_536;
  const [userId, projectId, attachmentId] = [newId(), newId(), newId()];
  await core.withTenant(tenantId, async ({ db }) => {
    await db
      .insertInto('users')
      .values({
        id: userId,
        email: `u-${userId.slice(0, 8)}@attachments.test`,
        display_name: 'U',
        status: 'active',
        role: 'owner',
      })
      .execute();
    await db.insertInto('projects').values({ id: projectId, name: 'P', created_by: userId }).execute();
    await db
      .insertInto('attachments')
      .values({ id: attachmentId, project_id: projectId, created_by: userId, updated_by: userId })
      .execute();
  });
  return {
    userId,
    projectId,
    attachmentId,
    async upload(version, text) {
      const objectKey = `attachments/${newTimeOrderedId()}`;
      const plaintext = Buffer.from(text);
      await store.put(
        objectKey,
        encryptBuffer(key.bytes, plaintext, { aad: objectAad(tenantId, objectKey), chunkSizeBytes }),
      );
      await core.withTenant(tenantId, async ({ db }) => {
        await db
          .updateTable('attachment_versions')
          .set({ retired_at: new Date() })
          .where('attachment_id', '=', attachmentId)
          .where('retired_at', 'is', null)
          .execute();
        await db.updateTable('attachments').set({ version }).where('id', '=', attachmentId).execute();
        await db
          .insertInto('attachment_versions')
          .values({
            attachment_id: attachmentId,
            version,
            project_id: projectId,
            object_key: objectKey,
            filename: options.filename ?? 'a.txt',
            content_type: options.contentType ?? 'text/plain',
            size_bytes: plaintext.length,
            sha256: createHash('sha256').update(plaintext).digest(),
            chunk_size_bytes: chunkSizeBytes,
            key_version: key.version,
            created_by: userId,
          })
          .execute();
      });
      return objectKey;
    },
  };
}
