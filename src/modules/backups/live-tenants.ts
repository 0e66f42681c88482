import type { TenantRepository } from '../tenants/tenant.repository.ts';

const pageSize = 100;

/** Ids of every tenant not deleted, page by page. */
export async function listLiveTenantIds(tenants: TenantRepository): Promise<string[]> {
  const ids: string[] = [];
  for (let afterId: string | undefined; ; ) {
    const page = await tenants.list({ includeDeleted: false, limit: pageSize, afterId });
    ids.push(...page.map((t) => t.id));
    if (page.length < pageSize) return ids;
    afterId = page.at(-1)!.id;
  }
}
