import { createTransport, type SMTPPoolSentMessageInfo, type Transporter } from 'nodemailer';
import type { Secret } from '../../platform/secret.ts';
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

export interface SmtpMailerOptions {
  /** `smtp://host[:port]` (STARTTLS when offered, port 587) or `smtps://host[:port]` (TLS, port 465). */
  url: string;
  /** `user@example.com` or `Name <user@example.com>`. */
  from: string;
  auth?: { user: string; pass: Secret<string> };
  /**
   * Refuse to talk to an `smtp://` server that does not offer STARTTLS. Defaults to true when `auth`
   * is set, so a password never crosses the network in clear unless someone says so explicitly.
   */
  requireTls?: boolean;
}

export interface MailServerAddress {
  host: string;
  port: number;
  /** TLS from the first byte (`smtps://`), rather than a STARTTLS upgrade. */
  secure: boolean;
}

/**
 * An SMTP server through a small nodemailer pool. Connects on first use, so constructing one opens
 * no socket.
 */
export class SmtpMailer implements Mailer {
  readonly kind = 'smtp';
  readonly #from: MailSender;
  readonly #transporter: Transporter<SMTPPoolSentMessageInfo>;

  constructor(options: SmtpMailerOptions) {
    const { host, port, secure } = parseMailUrl(options.url);
    this.#from = parseMailSender(options.from);
    this.#transporter = createTransport({
      pool: true,
      maxConnections: 3,
      host,
      port,
      secure,
      requireTLS: !secure && (options.requireTls ?? options.auth !== undefined),
      auth: options.auth && { user: options.auth.user, pass: options.auth.pass.reveal() },
      // nodemailer waits up to 2 minutes to connect and 10 minutes on a silent socket by default; a
      // request that sends mail would hang that long. Fail in seconds with mail_unavailable instead.
      connectionTimeout: 5_000,
      greetingTimeout: 5_000,
      socketTimeout: 10_000,
      dnsTimeout: 5_000,
      disableFileAccess: true,
      disableUrlAccess: true,
    });
  }

  /**
   * Resolves once the server accepted the message for at least one recipient (nodemailer rejects
   * when it accepted none). Recipients the server refused individually are not reported: the others
   * already have the message, so failing the call would invite a retry that sends it twice.
   */
  async send(message: MailMessage): Promise<SentMail> {
    assertMailMessage(message);
    try {
      const sent = await this.#transporter.sendMail(toNodemailerMessage(message, this.#from));
      return { messageId: sent.messageId };
    } catch (error) {
      throw mailErrors.unavailable(error);
    }
  }

  /** Connects, greets, upgrades to TLS and logs in as a real send would, then hangs up. */
  async ping(): Promise<void> {
    try {
      await this.#transporter.verify();
    } catch (error) {
      throw mailErrors.unavailable(error);
    }
  }

  async close(): Promise<void> {
    this.#transporter.close();
  }
}

/**
 * Reads `smtp://host[:port]` or `smtps://host[:port]`. Credentials in the URL are refused: they come
 * from their own (secret, file-capable) settings, and a URL gets logged and echoed far too easily.
 * For the same reason no error message repeats the URL.
 */
export function parseMailUrl(url: string): MailServerAddress {
  const expected = 'invalid mail URL: expected smtp://host[:port] or smtps://host[:port]';
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // URL's own error carries the input; ours must not.
    throw new Error(expected);
  }
  if (parsed.protocol !== 'smtp:' && parsed.protocol !== 'smtps:') throw new Error(expected);
  if (parsed.username !== '' || parsed.password !== '') {
    throw new Error(
      'invalid mail URL: credentials must not be part of it; configure the SMTP user and password separately',
    );
  }
  if (
    parsed.hostname === '' ||
    !['', '/'].includes(parsed.pathname) ||
    parsed.search !== '' ||
    parsed.hash !== ''
  ) {
    throw new Error(expected);
  }
  const secure = parsed.protocol === 'smtps:';
  return {
    // WHATWG URL keeps IPv6 literals bracketed; sockets want them bare.
    host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: parsed.port === '' ? (secure ? 465 : 587) : Number(parsed.port),
    secure,
  };
}
