import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSmtpServer } from '../../../test/support/smtp-server.ts';
import { Secret } from '../../platform/secret.ts';
import type { Mailer, MailMessage } from '../../ports/mail.port.ts';
import { OutboxMailer } from './mailer.outbox.ts';
import { SmtpMailer } from './mailer.smtp.ts';

const from = 'Strongroom, Inc <no-reply@strongroom.test>';

interface Delivered {
  raw: string;
  /** RCPT TO, where the transport has an envelope. */
  envelopeTo?: string[];
}

interface Harness {
  mailer: Mailer;
  /** Everything that left through the mailer so far, to prove a refusal sent or wrote nothing. */
  delivered(): Promise<Delivered[]>;
  /** A mailer whose destination is gone, to prove failures are fast and typed. */
  openUnreachable(): Promise<Mailer>;
  teardown(): Promise<void>;
}

async function startOutboxHarness(): Promise<Harness> {
  const parent = await mkdtemp(join(tmpdir(), 'strongroom-outbox-'));
  const dir = join(parent, 'outbox');
  return {
    mailer: new OutboxMailer({ dir, from }),
    delivered: async () => {
      const names = (await readdir(dir)).filter((name) => name.endsWith('.eml')).sort();
      return Promise.all(names.map(async (name) => ({ raw: await readFile(join(dir, name), 'utf8') })));
    },
    openUnreachable: async () => {
      // A file where the folder should be: fails even for root, which ignores permission bits.
      const gone = join(parent, 'gone');
      const mailer = new OutboxMailer({ dir: gone, from });
      await rm(gone, { recursive: true });
      await writeFile(gone, '');
      return mailer;
    },
    teardown: () => rm(parent, { recursive: true, force: true }),
  };
}

async function startSmtpHarness(): Promise<Harness> {
  const server = await startSmtpServer();
  const mailer = new SmtpMailer({ url: server.url, from });
  return {
    mailer,
    delivered: async () => server.received.map(({ raw, to }) => ({ raw, envelopeTo: to })),
    // Port 1 (tcpmux) is never served on a test machine: the connection is refused at once.
    openUnreachable: async () => new SmtpMailer({ url: 'smtp://127.0.0.1:1', from }),
    teardown: async () => {
      await mailer.close();
      await server.stop();
    },
  };
}

const implementations: Array<[string, () => Promise<Harness>]> = [
  ['OutboxMailer', startOutboxHarness],
  ['SmtpMailer on smtp-server', startSmtpHarness],
];

const valid: MailMessage = { to: ['alice@example.test'], subject: 'Hello', text: 'Hi Alice' };

const injections: Array<[string, MailMessage]> = [
  ['CRLF in the subject', { ...valid, subject: 'Subject\r\nBcc: evil@x.test' }],
  ['LF in the subject', { ...valid, subject: 'Subject\nBcc: evil@x.test' }],
  ['a lone CR in the subject', { ...valid, subject: 'Subject\rBcc: evil@x.test' }],
  [
    'NEL (U+0085), a line break to some parsers, in the subject',
    { ...valid, subject: 'Subject\u0085Bcc: evil@x.test' },
  ],
  ['NUL in an X- header value', { ...valid, headers: { 'X-Tag': 'ok\u0000' } }],
  ['CRLF in an address', { ...valid, to: ['alice@example.test\r\nBcc: evil@x.test'] }],
  ['LF in an address', { ...valid, to: ['alice@example.test\nevil@x.test'] }],
  ['an address list in one entry', { ...valid, to: ['alice@example.test, evil@x.test'] }],
  ['a display name', { ...valid, to: ['Evil <evil@x.test>'] }],
  ['a Bcc header', { ...valid, headers: { Bcc: 'evil@x.test' } }],
  ['a Reply-To header', { ...valid, headers: { 'Reply-To': 'evil@x.test' } }],
  ['a From header', { ...valid, headers: { From: 'ceo@strongroom.test' } }],
  ['CRLF in an X- header value', { ...valid, headers: { 'X-Tag': 'ok\r\nBcc: evil@x.test' } }],
  ['CRLF in an X- header name', { ...valid, headers: { 'X-Tag: a\r\nBcc': 'evil@x.test' } }],
];

for (const [title, startHarness] of implementations) {
  describe(`Mailer contract: ${title}`, () => {
    let harness: Harness;

    beforeAll(async () => {
      harness = await startHarness();
    });
    afterAll(() => harness?.teardown());

    it('answers a ping', async () => {
      await harness.mailer.ping();
    });

    it('delivers recipients, From, subject and both bodies intact, non-ASCII included', async () => {
      const before = (await harness.delivered()).length;
      const message: MailMessage = {
        to: ['alice@example.test', 'bob@example.test'],
        subject: 'Réinitialisation du mot de passe ✓ — ключ 🔑',
        text: 'Grüße, Zoë!\nYour code: 123456 ✓\n.\nA line that starts with a dot, above.',
        html: '<p>Grüße, <b>Zoë</b> ✓</p>',
        headers: { 'X-Strongroom-Tenant': 'tenant-42' },
      };
      const sent = await harness.mailer.send(message);

      const delivered = (await harness.delivered()).slice(before);
      expect(delivered).toHaveLength(1);
      const [mail] = delivered;
      const parsed = parseMessage(mail!.raw);
      expect(parsed.header('from')).toBe('"Strongroom, Inc" <no-reply@strongroom.test>');
      expect(parsed.header('to')).toBe('alice@example.test, bob@example.test');
      expect(parsed.header('subject')).toBe(message.subject);
      expect(parsed.header('x-strongroom-tenant')).toBe('tenant-42');
      expect(parsed.header('message-id')).toBe(sent.messageId);
      expect(sent.messageId).toMatch(/^<[^<>\s]+@[^<>\s]+>$/);
      expect(parsed.header('bcc')).toBeUndefined();
      expect(parsed.text).toBe(message.text);
      expect(parsed.html).toBe(message.html);
      // Raw headers are 7-bit: the non-ASCII subject went out as RFC 2047 encoded words.
      expect(mail!.raw.slice(0, mail!.raw.indexOf('\r\n\r\n'))).toMatch(/^[\x20-\x7e\r\n\t]*$/);
      if (mail!.envelopeTo) expect(mail!.envelopeTo).toEqual(message.to);
    });

    it('refuses header injection and recipient smuggling with invalid_mail, sending nothing', async () => {
      const before = await harness.delivered();
      for (const [, message] of injections) {
        await expect(harness.mailer.send(message)).rejects.toMatchObject({ code: 'invalid_mail' });
      }
      expect(await harness.delivered()).toEqual(before);
    });

    it('accepts 50 recipients and refuses 51 or none', async () => {
      const recipients = Array.from({ length: 51 }, (_, i) => `user${i}@example.test`);
      const before = (await harness.delivered()).length;
      for (const to of [recipients, []]) {
        await expect(harness.mailer.send({ ...valid, to })).rejects.toMatchObject({ code: 'invalid_mail' });
      }
      expect(await harness.delivered()).toHaveLength(before);

      await harness.mailer.send({ ...valid, to: recipients.slice(0, 50) });
      const [mail] = (await harness.delivered()).slice(before);
      expect(parseMessage(mail!.raw).header('to')?.split(', ')).toEqual(recipients.slice(0, 50));
    });

    it('refuses an over-long subject and an over-large body with invalid_mail', async () => {
      const before = (await harness.delivered()).length;
      const tooLarge = [
        { ...valid, subject: 's'.repeat(999) },
        { ...valid, text: 'x'.repeat(1024 * 1024 + 1) },
        { ...valid, text: 'x'.repeat(512 * 1024), html: 'é'.repeat(256 * 1024 + 1) }, // 1 MiB + 2 bytes
      ];
      for (const message of tooLarge) {
        await expect(harness.mailer.send(message)).rejects.toMatchObject({ code: 'invalid_mail' });
      }
      expect(await harness.delivered()).toHaveLength(before);
    });

    it('fails fast with mail_unavailable when the destination is unreachable', async () => {
      const unreachable = await harness.openUnreachable();
      try {
        for (const operation of [() => unreachable.send(valid), () => unreachable.ping()]) {
          const startedMs = Date.now();
          await expect(operation()).rejects.toMatchObject({ code: 'mail_unavailable' });
          expect(Date.now() - startedMs).toBeLessThan(3_000);
        }
      } finally {
        await unreachable.close();
      }
    });
  });
}

describe('OutboxMailer files', () => {
  let parent: string;

  beforeAll(async () => {
    parent = await mkdtemp(join(tmpdir(), 'strongroom-outbox-'));
  });
  afterAll(() => rm(parent, { recursive: true, force: true }));

  it('writes owner-only .eml files named by time and Message-ID, leaving no temp files', async () => {
    const dir = join(parent, 'nested', 'outbox');
    const mailer = new OutboxMailer({ dir, from });
    const sent = await Promise.all(Array.from({ length: 5 }, () => mailer.send(valid)));

    expect(((await stat(dir)).mode & 0o777).toString(8)).toBe('700');
    const names = (await readdir(dir)).sort();
    expect(names).toHaveLength(5);
    for (const name of names) {
      expect(name).toMatch(/^\d{8}T\d{6}\.\d{3}Z-[A-Za-z0-9._@-]+\.eml$/);
      expect(((await stat(join(dir, name))).mode & 0o777).toString(8)).toBe('600');
    }
    const ids = sent.map(({ messageId }) => messageId.slice(1, -1));
    expect(names.map((name) => name.slice(21, -4)).sort()).toEqual(ids.sort());
    // RFC 5322 lines end in CRLF; a bare LF would mean the file is not what SMTP would carry.
    const raw = await readFile(join(dir, names[0]!), 'utf8');
    expect(raw.replaceAll('\r\n', '')).not.toMatch(/[\r\n]/);
  });
});

describe('SmtpMailer login', () => {
  const credentials = { user: 'strongroom', pass: 'correct horse battery staple' };
  let server: Awaited<ReturnType<typeof startSmtpServer>>;

  beforeAll(async () => {
    server = await startSmtpServer({ credentials });
  });
  afterAll(() => server?.stop());

  async function sendWith(options: { pass: string; requireTls?: boolean }) {
    const mailer = new SmtpMailer({
      url: server.url,
      from,
      auth: { user: credentials.user, pass: new Secret(options.pass) },
      requireTls: options.requireTls,
    });
    try {
      return await mailer.send(valid);
    } finally {
      await mailer.close();
    }
  }

  it('logs in and delivers when told that plain text is acceptable', async () => {
    const before = server.received.length;
    await sendWith({ pass: credentials.pass, requireTls: false });
    expect(server.received.slice(before).map(({ from, to }) => ({ from, to }))).toEqual([
      { from: 'no-reply@strongroom.test', to: ['alice@example.test'] },
    ]);
  });

  it('by default will not send a password to a server without STARTTLS', async () => {
    const before = server.received.length;
    await expect(sendWith({ pass: credentials.pass })).rejects.toMatchObject({ code: 'mail_unavailable' });
    expect(server.received).toHaveLength(before);
  });

  it('fails with mail_unavailable on a wrong password', async () => {
    const failure = sendWith({ pass: 'wrong', requireTls: false });
    await expect(failure).rejects.toMatchObject({ code: 'mail_unavailable' });
    await expect(failure).rejects.not.toThrow(/wrong|correct horse/);
  });
});

/**
 * Just enough MIME to read back what the adapters wrote (RFC 2045-2047): unfolded headers with
 * encoded words decoded, and the text/html parts with their transfer encoding undone. Reading it
 * back independently is the point: it proves a mail client could decode what we produced.
 */
function parseMessage(raw: string): {
  header(name: string): string | undefined;
  text?: string;
  html?: string;
} {
  const { headers, body } = splitEntity(raw);
  const parts: Record<string, string> = {};
  const collect = (entityHeaders: Map<string, string>, entityBody: string) => {
    const contentType = entityHeaders.get('content-type') ?? 'text/plain';
    const boundary = /boundary="?([^";]+)"?/i.exec(contentType)?.[1];
    if (boundary) {
      const sections = entityBody.split(`--${boundary}`).slice(1, -1);
      for (const section of sections) {
        const part = splitEntity(section.replace(/^\r\n/, '').replace(/\r\n$/, ''));
        collect(part.headers, part.body);
      }
      return;
    }
    const bytes = decodeTransfer(entityBody, entityHeaders.get('content-transfer-encoding') ?? '7bit');
    parts[contentType.split(';')[0]!.trim().toLowerCase()] = bytes.toString('utf8').replaceAll('\r\n', '\n');
  };
  collect(headers, body);
  return {
    header: (name) => headers.get(name.toLowerCase()),
    text: parts['text/plain'],
    html: parts['text/html'],
  };
}

function splitEntity(raw: string): { headers: Map<string, string>; body: string } {
  const end = raw.indexOf('\r\n\r\n');
  const headerBlock = end === -1 ? raw : raw.slice(0, end);
  const headers = new Map<string, string>();
  for (const line of headerBlock.replace(/\r\n(?=[ \t])/g, '').split('\r\n')) {
    const colon = line.indexOf(':');
    headers.set(line.slice(0, colon).trim().toLowerCase(), decodeEncodedWords(line.slice(colon + 1).trim()));
  }
  return { headers, body: end === -1 ? '' : raw.slice(end + 4) };
}

/** RFC 2047: whitespace between adjacent encoded words is not part of the text. */
function decodeEncodedWords(value: string): string {
  return value
    .replace(/\?=\s+=\?/g, '?==?')
    .replace(/=\?utf-8\?([QB])\?([^?]*)\?=/gi, (_, encoding: string, text: string) =>
      encoding.toUpperCase() === 'B'
        ? Buffer.from(text, 'base64').toString('utf8')
        : decodeQuotedPrintable(text.replaceAll('_', ' ')).toString('utf8'),
    );
}

function decodeTransfer(body: string, encoding: string): Buffer {
  switch (encoding.toLowerCase()) {
    case 'base64':
      return Buffer.from(body.replace(/\s+/g, ''), 'base64');
    case 'quoted-printable':
      return decodeQuotedPrintable(body.replace(/=\r\n/g, ''));
    default:
      return Buffer.from(body, 'utf8');
  }
}

function decodeQuotedPrintable(text: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '=' && /^[0-9A-F]{2}$/i.test(text.slice(i + 1, i + 3))) {
      bytes.push(Number.parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(text[i]!, 'utf8'));
    }
  }
  return Buffer.from(bytes);
}
