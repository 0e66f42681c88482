import { generateSecret, generateURI, verify } from 'otplib';

/**
 * TOTP (RFC 6238: SHA-1, 6 digits, 30 s steps, as authenticator apps expect). Callers store the
 * secret encrypted and remember the last accepted step, so a code is never accepted twice.
 */
export function newTotpSecret(): string {
  return generateSecret();
}

export function totpUri(label: string, secret: string): string {
  return generateURI({ issuer: 'Strongroom', label, secret });
}

/** The time step `code` belongs to, within ±1 step of now (clock drift), or undefined. */
export async function matchTotpStep(secret: string, code: string): Promise<number | undefined> {
  if (!/^\d{6}$/.test(code)) return undefined;
  const result = await verify({ secret, token: code, epochTolerance: 30 });
  // otplib's functional verify also types HOTP results; a TOTP match carries its time step.
  return result.valid && 'timeStep' in result ? result.timeStep : undefined;
}
