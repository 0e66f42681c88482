import type { Core } from '../src/main/compose.ts';
import type { UserPrincipal } from '../src/modules/identity/identity.service.ts';

/** The password of every bench tenant's owner (the login scenario signs in with it). */
export const benchPassword = 'bench-correct-horse-battery-staple-7';

/**
 * A tenant made through the product, as a customer's would be: its owner set up with the one-time
 * token and signed in, and one project.
 */
export async function benchTenant(
  core: Core,
  slug: string,
): Promise<{ ownerEmail: string; sessionToken: string; principal: UserPrincipal; projectId: string }> {
  const ownerEmail = `owner@${slug}.test`;
  const created = await core.tenants.create({ slug, name: `Bench tenant ${slug}`, ownerEmail });
  const { session } = await core.identity.setupOwner({
    token: created.ownerSetupToken,
    displayName: 'Bench Owner',
    password: benchPassword,
  });
  const auth = await core.identity.authenticate(session.token);
  if (!auth) throw new Error('the fresh session does not authenticate');
  const project = await core.projects.create(auth.principal, { name: 'Bench project' });
  // The throughput scenarios measure one tenant at full speed: its operator raised its rate and
  // concurrency limits, as for any large customer (the noisy-neighbour scenario sets its own).
  await core.quotas.setLimits(created.tenant.id, {
    requestsPerSecond: 1_000_000,
    concurrentRequests: 100_000,
  });
  return { ownerEmail, sessionToken: session.token, principal: auth.principal, projectId: project.id };
}
