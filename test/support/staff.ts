import type { Core } from '../../src/main/compose.ts';
import { type CodeAt, totpFromNow } from './totp.ts';

/**
 * A staff member the way a person becomes one: an operator creates the account, the person redeems
 * the setup token, scans the secret and confirms with a current code, and gets their first key.
 * Returns that key, the TOTP secret, and codes counted from the enrolment's step (`codeAt(secret, 0)`
 * is the code enrolment spent).
 */
export async function enrolStaff(
  core: Core,
  input: { email: string; displayName: string; role: string },
): Promise<{ apiKey: string; totpSecret: string; staffId: string; codeAt: CodeAt }> {
  const codeAt = totpFromNow();
  const created = await core.staff.create(input);
  const { secret } = await core.staff.beginSetup(created.setupToken);
  const { apiKey } = await core.staff.completeSetup(created.setupToken, await codeAt(secret, 0));
  return { apiKey, totpSecret: secret, staffId: created.staff.id, codeAt };
}
