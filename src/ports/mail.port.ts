import { defineError } from '../platform/errors.ts';

/**
 * Outgoing e-mail: invitations, password resets, alerts. Implementations: an outbox folder of `.eml`
 * files (default, so a developer can read what would have been sent) and any SMTP server. The sender
 * is adapter config, never part of a message, so no caller can send as someone else.
 */
export interface Mailer {
  readonly kind: 'outbox' | 'smtp';
  /** Resolves once the message is written durably or accepted by the server. */
  send(message: MailMessage): Promise<SentMail>;
  /** Cheap reachability check for /readyz. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface MailMessage {
  /** 1 to 50 plain addresses (`user@example.com`, no display names). */
  to: string[];
  subject: string;
  text: string;
  html?: string;
  /** Only `X-` headers: a caller must not be able to set `Bcc`, `From`, `Reply-To` and the like. */
  headers?: Record<string, string>;
}

export interface SentMail {
  /** The Message-ID header, angle brackets included. */
  messageId: string;
}

export const mailErrors = {
  invalid: defineError('invalid_mail', 'invalid', 'An e-mail message is malformed.', (reason: string) => ({
    message: `invalid mail: ${reason}`,
  })),
  unavailable: defineError(
    'mail_unavailable',
    'unavailable',
    'The mail transport cannot deliver right now.',
    (cause?: unknown) => ({ cause }),
  ),
};

export const maxMailRecipients = 50;
/** RFC 5322 §2.1.1: a line may not exceed 998 characters; we hold the unfolded value to the same. */
export const maxMailHeaderLength = 998;
export const maxMailBodyBytes = 1024 * 1024;

/**
 * A dot-atom addr-spec (RFC 5322 §3.4.1) in ASCII: no display name, quotes, comments, commas or
 * whitespace. Deliberately narrower than the RFC, because nodemailer parses a recipient string as an
 * address *list*: `"a@x, b@y"` or `"A <a@x>"` would otherwise turn one entry into several recipients.
 */
const addressPattern =
  /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;
/** RFC 5321 §4.5.3.1.3: a path is at most 256 octets including the angle brackets. */
const maxAddressLength = 254;
/** A field name of RFC 5322 §3.6.8, restricted to `X-` extension fields. */
const headerNamePattern = /^X-[A-Za-z0-9-]+$/i;
/**
 * CR and LF end a header line (injection); no other control character (NUL, tab, DEL, the C1 set with
 * NEL, which some parsers take for a line break) has any business in a subject or header value.
 */
const controlCharacterPattern = /\p{Cc}/u;
/** `Name <address>`: only the configured sender may carry a display name. */
const senderPattern = /^([^<>\p{Cc}]*)<([^<>]+)>$/u;

export function isMailAddress(address: unknown): address is string {
  return typeof address === 'string' && address.length <= maxAddressLength && addressPattern.test(address);
}

/**
 * The whole defence against header injection and recipient smuggling: every adapter calls this
 * before it renders anything, so a refused message is never half-sent or half-written.
 */
export function assertMailMessage(message: MailMessage): void {
  if (typeof message !== 'object' || message === null) throw mailErrors.invalid('not an object');
  const { to, subject, text, html, headers } = message;
  if (!Array.isArray(to) || to.length === 0 || to.length > maxMailRecipients) {
    throw mailErrors.invalid(`between 1 and ${maxMailRecipients} recipients are required`);
  }
  // The address itself is not echoed: it may be user input, and error messages end up in logs.
  for (const [index, address] of to.entries()) {
    if (!isMailAddress(address)) throw mailErrors.invalid(`recipient ${index + 1} is not a plain address`);
  }
  assertHeaderValue('subject', subject);
  if (typeof text !== 'string' || (html !== undefined && typeof html !== 'string')) {
    throw mailErrors.invalid('text (and html, if given) must be strings');
  }
  if (Buffer.byteLength(text) + Buffer.byteLength(html ?? '') > maxMailBodyBytes) {
    throw mailErrors.invalid(`text and html together exceed ${maxMailBodyBytes} bytes`);
  }
  if (headers === undefined) return;
  if (typeof headers !== 'object' || headers === null) throw mailErrors.invalid('headers must be an object');
  for (const [name, value] of Object.entries(headers)) {
    if (!headerNamePattern.test(name)) throw mailErrors.invalid('only X- headers may be set');
    assertHeaderValue(`header ${name}`, value);
  }
}

export interface MailSender {
  /** Display name, possibly empty. */
  name: string;
  address: string;
}

/**
 * The configured sender: a plain address, or `Display Name <address>`. Parsed once when an adapter
 * is built, so a bad `from` fails at boot rather than on the first password reset. Adapters hand
 * nodemailer the parsed object, never the string: nodemailer would read a comma in a display name
 * (`Acme, Inc <no-reply@acme.test>`) as a second address.
 */
export function parseMailSender(from: string): MailSender {
  const match = typeof from === 'string' ? senderPattern.exec(from.trim()) : null;
  const sender = match
    ? { name: (match[1] ?? '').trim(), address: match[2] ?? '' }
    : { name: '', address: from };
  if (!isMailAddress(sender.address)) {
    throw new Error('invalid mail sender: expected user@example.com or "Name <user@example.com>"');
  }
  return sender;
}

function assertHeaderValue(what: string, value: unknown): void {
  if (typeof value !== 'string') throw mailErrors.invalid(`${what} must be a string`);
  if (controlCharacterPattern.test(value))
    throw mailErrors.invalid(`${what} contains a line break or control character`);
  if (value.length > maxMailHeaderLength) {
    throw mailErrors.invalid(`${what} is longer than ${maxMailHeaderLength} characters`);
  }
}
