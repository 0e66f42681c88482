import { createHash, createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';

/** DER prefix of a PKCS#8 Ed25519 private key (RFC 8410); the 32-byte seed follows it. */
const pkcs8Ed25519Prefix = Buffer.from('302e020100300506032b657004220420', 'hex');

/**
 * The platform's Ed25519 checkpoint signing key (RFC 8032). Held like the master key (env, `_FILE`,
 * or a 0600 file generated in the data folder); only its public half ever leaves the process.
 */
export class AuditSigner {
  readonly keyId: string;
  readonly publicKeyPem: string;
  readonly #privateKey: KeyObject;
  readonly #publicKey: KeyObject;

  /** `seed`: the 32-byte Ed25519 private key. */
  constructor(seed: Buffer) {
    if (seed.length !== 32) throw new Error('the audit signing key must be 32 bytes');
    this.#privateKey = createPrivateKey({
      key: Buffer.concat([pkcs8Ed25519Prefix, seed]),
      format: 'der',
      type: 'pkcs8',
    });
    this.#publicKey = createPublicKey(this.#privateKey);
    this.publicKeyPem = this.#publicKey.export({ format: 'pem', type: 'spki' }).toString();
    const raw = this.#publicKey.export({ format: 'der', type: 'spki' });
    // A short non-secret name for the key, so a checkpoint says which key signed it.
    this.keyId = `ed25519:${createHash('sha256').update(raw).digest('hex').slice(0, 16)}`;
  }

  sign(message: string): string {
    return sign(null, Buffer.from(message, 'utf8'), this.#privateKey).toString('base64');
  }

  verify(message: string, signature: string, keyId: string): boolean {
    if (keyId !== this.keyId) return false;
    try {
      return verify(null, Buffer.from(message, 'utf8'), this.#publicKey, Buffer.from(signature, 'base64'));
    } catch {
      return false;
    }
  }

  toJSON() {
    return { keyId: this.keyId };
  }
}

/** What a checkpoint signs: the chain (tenant, or null for the platform), its head, and when. */
export interface CheckpointClaim {
  tenantId: string | null;
  position: number;
  headHash: string;
  at: Date;
}

export function checkpointMessage(claim: CheckpointClaim): string {
  return `strongroom/audit-checkpoint/v1\n${JSON.stringify({
    at: claim.at.toISOString(),
    headHash: claim.headHash,
    position: claim.position,
    tenantId: claim.tenantId,
  })}`;
}
