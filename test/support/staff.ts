import { generate } from 'otplib';
import type { Core } from '../../src/main/compose.ts';

/**
 * A staff member the way a person becomes one: an operator creates the account, the person redeems
 * the setup token, scans the secret and confirms with a current code, and gets their first key.
 * Returns that key and the TOTP secret (for step-up codes).
 */
export async function enrolStaff(
  core: Core,
  input: { email: string; displayName: string; role: string },
): Promise<{ apiKey: string; totpSecret: string; staffId: string }> {
  const created = await core.staff.create(input);
  const { secret } = await core.staff.beginSetup(created.setupToken);
  const { apiKey } = await core.staff.completeSetup(created.setupToken, await generate({ secret }));
  return { apiKey, totpSecret: secret, staffId: created.staff.id };
}
