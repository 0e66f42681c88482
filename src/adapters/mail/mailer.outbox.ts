import { randomUUID } from 'node:crypto';
import { constants, mkdirSync } from 'node:fs';
import { access, open, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createTransport } from 'nodemailer';
import {
  assertMailMessage,
  type Mailer,
  type MailMessage,
  type MailSender,
  mailErrors,
  parseMailSender,
  type SentMail,
} from '../../ports/mail.port.ts';
import { toNodemailerMessage } from './nodemailer-message.ts';

export interface OutboxMailerOptions {
  dir: string;
  /** `user@example.com` or `Name <user@example.com>`. */
  from: string;
}

/**
 * Writes each message as an RFC 5322 `.eml` file instead of sending it: the embedded default, so a
 * developer can open exactly what would have gone out. Files sort by time of sending.
 */
export class OutboxMailer implements Mailer {
  readonly kind = 'outbox';
  readonly #dir: string;
  readonly #from: MailSender;
  // nodemailer's stream transport renders the full MIME message to a Buffer and sends nothing.
  // CRLF line endings because RFC 5322 requires them: the file is byte for byte what SMTP would carry.
  readonly #transporter = createTransport({ streamTransport: true, buffer: true, newline: 'windows' });

  constructor(options: OutboxMailerOptions) {
    this.#from = parseMailSender(options.from);
    this.#dir = resolve(options.dir);
    // Owner-only: these are password resets and invitations, with live links in them.
    mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
  }

  async send(message: MailMessage): Promise<SentMail> {
    assertMailMessage(message);
    const date = new Date();
    try {
      const rendered = await this.#transporter.sendMail(toNodemailerMessage(message, this.#from, date));
      if (!Buffer.isBuffer(rendered.message)) throw new Error('nodemailer did not buffer the message');
      await this.#writeAtomically(fileNameOf(date, rendered.messageId), rendered.message);
      return { messageId: rendered.messageId };
    } catch (error) {
      throw mailErrors.unavailable(error);
    }
  }

  async ping(): Promise<void> {
    try {
      await access(this.#dir, constants.W_OK | constants.X_OK);
    } catch (error) {
      throw mailErrors.unavailable(error);
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Temp file, fsync, rename, fsync the folder: a reader (or a crash) sees a whole message or none.
   * The temp name starts with a dot and does not end in `.eml`, so nothing watching for `*.eml`
   * picks up a half-written file.
   */
  async #writeAtomically(name: string, bytes: Buffer): Promise<void> {
    const tmpPath = join(this.#dir, `.${randomUUID()}.tmp`);
    try {
      const file = await open(tmpPath, 'wx', 0o600);
      try {
        await file.writeFile(bytes);
        await file.sync();
      } finally {
        await file.close();
      }
      await rename(tmpPath, join(this.#dir, name));
    } catch (error) {
      await rm(tmpPath, { force: true });
      throw error;
    }
    const dir = await open(this.#dir, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}

/**
 * `20260102T030405.678Z-<message id>.eml`: ISO 8601 basic format, because the colons of the extended
 * format are not allowed in file names on Windows. The Message-ID (random) keeps names unique.
 */
function fileNameOf(date: Date, messageId: string): string {
  const timestamp = date.toISOString().replace(/[-:]/g, '');
  const safeId = messageId.replace(/^<|>$/g, '').replace(/[^A-Za-z0-9._@-]/g, '_');
  return `${timestamp}-${safeId}.eml`;
}
