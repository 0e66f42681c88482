import { identityErrors } from './identity.errors.ts';
import { isCommonPassword } from './password-blocklist.ts';

/** Input is capped before hashing so a megabyte "password" cannot cost a megabyte of argon2 work. */
export const maxPasswordBytes = 1024;

/**
 * NIST SP 800-63B rev 4 (§3.1.1.2): at least 15 characters for a password that is the only factor,
 * 8 with MFA; at least 64 accepted (we accept up to 1,024 bytes); no composition rules; no
 * truncation; checked against a blocklist of common and context-specific values. Unicode is
 * normalised (NFKC) so the same password typed on two keyboards matches. Returns the normalised
 * password, which is what gets hashed and verified.
 */
export function acceptNewPassword(
  password: unknown,
  options: { hasMfa: boolean; context: readonly string[] },
): string {
  if (typeof password !== 'string') throw identityErrors.passwordTooShort(options.hasMfa ? 8 : 15);
  if (Buffer.byteLength(password, 'utf8') > maxPasswordBytes) throw identityErrors.passwordTooLong();
  const normalized = normalizePassword(password);
  const minimum = options.hasMfa ? 8 : 15;
  if ([...normalized].length < minimum) throw identityErrors.passwordTooShort(minimum);
  if (isGuessable(normalized, options.context)) throw identityErrors.passwordCommon();
  return normalized;
}

/** The form a password is hashed and verified in (login normalises the same way). */
export function normalizePassword(password: string): string {
  return password.normalize('NFKC');
}

function isGuessable(password: string, context: readonly string[]): boolean {
  const lower = password.toLowerCase();
  if (isCommonPassword(lower)) return true;
  if (isRepetition(lower) || isSequence(lower)) return true;
  // Context words (the account's email and its local part, the tenant's slug and name): what is
  // left once they are taken out must still be a password on its own (8 characters or more).
  let rest = lower;
  for (const word of context.map((w) => w.toLowerCase()).filter((w) => w.length >= 4)) {
    rest = rest.replaceAll(word, '');
  }
  return rest.length < lower.length && [...rest].length < 8;
}

/** One short unit repeated: "aaaaaaaaaaaaaaa", "abcabcabcabcabc", "passwordpassword". */
function isRepetition(password: string): boolean {
  for (let unit = 1; unit <= Math.min(8, password.length / 2); unit++) {
    if (password.length % unit === 0 && password.slice(0, unit).repeat(password.length / unit) === password)
      return true;
  }
  return false;
}

/** A run up or down the alphabet, the digits or a keyboard row: "123456789012345", "abcdefghijklmno". */
function isSequence(password: string): boolean {
  const rows = [
    'abcdefghijklmnopqrstuvwxyz',
    '0123456789',
    'qwertyuiopasdfghjklzxcvbnm',
    '1234567890qwertyuiop',
  ];
  return rows.some((row) => {
    const doubled = row.repeat(Math.ceil(password.length / row.length) + 1);
    const reversed = [...doubled].reverse().join('');
    return doubled.includes(password) || reversed.includes(password);
  });
}
