import { generate } from 'otplib';

export type CodeAt = (secret: string, offset: number) => Promise<string>;

/**
 * TOTP codes counted in 30 s steps from one moment (now), so a test that crosses a step boundary
 * halfway still means what it says: offset 0 is always the step the test started in (a replay stays
 * a replay), 1 the next. Valid while the test runs within ±1 step of that moment.
 */
export function totpFromNow(): CodeAt {
  const epoch = Math.floor(Date.now() / 1000);
  return (secret, offset) => generate({ secret, epoch: epoch + offset * 30 });
}
