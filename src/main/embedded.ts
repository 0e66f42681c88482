import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { generateLocalhostCertificate } from '../adapters/tls/certificate.self-signed.ts';
import { decodeMasterKey, type MasterKeySource } from '../config/config.ts';
import { defineError } from '../platform/errors.ts';
import type { Logger } from '../platform/logger.ts';

export const embeddedErrors = {
  masterKeyFile: defineError(
    'master_key_file_invalid',
    'invalid',
    'The master key file is missing or does not hold a 32-byte key.',
    (path: string, reason: string) => ({ message: `master key file ${path}: ${reason}`, details: { path } }),
  ),
  auditSigningKeyFile: defineError(
    'audit_signing_key_file_invalid',
    'invalid',
    'The audit signing key file is missing or does not hold a 32-byte Ed25519 key.',
    (path: string, reason: string) => ({
      message: `audit signing key file ${path}: ${reason}`,
      details: { path },
    }),
  ),
  tlsFiles: defineError(
    'tls_files_unreadable',
    'invalid',
    'The TLS certificate or key cannot be read.',
    (path: string) => ({ message: `cannot read TLS file ${path}`, details: { path } }),
  ),
};

/**
 * The master key: from the environment, or from its file. On the embedded default the file is
 * generated once (32 random bytes, hex, mode 0600) and the log says where, because losing it means
 * losing every tenant's data.
 */
export function loadMasterKey(source: MasterKeySource, log: Logger): Buffer {
  return loadKey(source, log, {
    name: 'master key',
    invalid: embeddedErrors.masterKeyFile,
    generated:
      'generated a new master key; back this file up and keep it apart from the database: without it no tenant data can be read',
  });
}

/**
 * The audit checkpoint signing key (an Ed25519 seed), kept exactly like the master key: from the
 * environment, its `_FILE`, or a 0600 file generated once in the data folder.
 */
export function loadAuditSigningKey(source: MasterKeySource, log: Logger): Buffer {
  return loadKey(source, log, {
    name: 'audit signing key',
    invalid: embeddedErrors.auditSigningKeyFile,
    generated:
      'generated a new audit signing key; back this file up: checkpoints signed with it can only be verified while it is known',
  });
}

function loadKey(
  source: MasterKeySource,
  log: Logger,
  what: { name: string; invalid: (path: string, reason: string) => Error; generated: string },
): Buffer {
  if (source.kind === 'value') return source.key.reveal();
  if (!existsSync(source.path)) {
    if (!source.generateIfMissing) throw what.invalid(source.path, 'does not exist');
    mkdirSync(dirname(source.path), { recursive: true, mode: 0o700 });
    // 'wx': never overwrite a key that appeared meanwhile (another process won the race).
    writeFileSync(source.path, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
    log.warn({ path: source.path }, what.generated);
  }
  const mode = statSync(source.path).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    log.warn(
      { path: source.path, mode: mode.toString(8) },
      `${what.name} file is readable by others; tightening to 0600`,
    );
    chmodSync(source.path, 0o600);
  }
  const key = decodeMasterKey(readFileSync(source.path, 'utf8'));
  if (!key) throw what.invalid(source.path, 'must hold 32 bytes as 64 hex characters or base64');
  return key;
}

/** The TLS certificate and key; on the embedded default a localhost certificate is generated once. */
export async function loadTlsMaterial(
  tls: { certFile: string; keyFile: string; generateIfMissing: boolean },
  log: Logger,
): Promise<{ cert: string; key: string }> {
  if (tls.generateIfMissing && !existsSync(tls.certFile)) {
    const generated = await generateLocalhostCertificate();
    mkdirSync(dirname(tls.certFile), { recursive: true, mode: 0o700 });
    writeFileSync(tls.keyFile, generated.key, { mode: 0o600 });
    writeFileSync(tls.certFile, generated.cert, { mode: 0o644 });
    log.info({ certFile: tls.certFile }, 'generated a self-signed TLS certificate for localhost');
  }
  const read = (path: string) => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      throw embeddedErrors.tlsFiles(path);
    }
  };
  return { cert: read(tls.certFile), key: read(tls.keyFile) };
}
