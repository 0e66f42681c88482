import { defineError } from '../../platform/errors.ts';

export const keyErrors = {
  masterKeyUnknown: defineError(
    'master_key_unknown',
    'unavailable',
    'A data key was wrapped by a master key that is not configured.',
    (kekId: string) => ({
      message: `a data key is wrapped by master key ${kekId}, which is not configured (set it as STRONGROOM_MASTER_KEY or STRONGROOM_PREVIOUS_MASTER_KEY)`,
      details: { kekId },
    }),
  ),
  masterKeyMismatch: defineError(
    'master_key_mismatch',
    'invalid',
    'The configured master key is not the one this database was set up with.',
    (expectedKekId: string, configuredKekId: string) => ({
      message: `the configured master key (${configuredKekId}) is not the one this database was set up with (${expectedKekId}); nothing was changed`,
      details: { expectedKekId, configuredKekId },
    }),
  ),
  dataKeyMissing: defineError(
    'data_key_missing',
    'not_found',
    'The tenant has no data key (it was deleted, and its data destroyed with the key).',
  ),
};
