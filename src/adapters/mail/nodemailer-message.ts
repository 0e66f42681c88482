import type { SendMailOptions } from 'nodemailer';
import type { MailMessage, MailSender } from '../../ports/mail.port.ts';

/**
 * The one place a port message becomes a nodemailer message, so both adapters render the same
 * bytes. Only fields we validated are passed: no attachments, no `path`/`href` content, and file and
 * URL access are off anyway, so a message can never make the server read a file or fetch a URL.
 */
export function toNodemailerMessage(message: MailMessage, from: MailSender, date?: Date): SendMailOptions {
  return {
    from,
    to: message.to,
    subject: message.subject,
    text: message.text,
    html: message.html,
    headers: message.headers,
    date,
    disableFileAccess: true,
    disableUrlAccess: true,
  };
}
