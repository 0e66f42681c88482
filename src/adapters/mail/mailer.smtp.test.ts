import { describe, expect, it } from 'vitest';
import { parseMailUrl, SmtpMailer } from './mailer.smtp.ts';

describe('parseMailUrl', () => {
  it('reads STARTTLS and implicit-TLS servers with their default ports', () => {
    expect(parseMailUrl('smtp://mail.example.com')).toEqual({
      host: 'mail.example.com',
      port: 587,
      secure: false,
    });
    expect(parseMailUrl('smtps://mail.example.com')).toEqual({
      host: 'mail.example.com',
      port: 465,
      secure: true,
    });
  });

  it('reads an explicit port, an IP address and a bracketed IPv6 literal', () => {
    expect(parseMailUrl('smtp://127.0.0.1:2525')).toEqual({ host: '127.0.0.1', port: 2525, secure: false });
    expect(parseMailUrl('smtps://[::1]:4650/')).toEqual({ host: '::1', port: 4650, secure: true });
  });

  it('refuses credentials in the URL, without echoing them or the URL', () => {
    for (const url of [
      'smtp://mailer:sup3r-secret@mail.example.com:587',
      'smtps://sup3r-secret@mail.example.com',
      'smtp://:sup3r-secret@mail.example.com',
    ]) {
      expect(() => parseMailUrl(url)).toThrow(/credentials must not be part of it/);
      expect(() => parseMailUrl(url)).not.toThrow(/sup3r-secret|mail\.example\.com/);
    }
  });

  it('rejects anything it would otherwise silently ignore or misread, without echoing it', () => {
    const rejected = [
      'mail.example.com:587',
      'http://mail.example.com',
      'smtp+starttls://mail.example.com',
      'smtp://',
      'smtp://mail.example.com/inbox',
      'smtp://mail.example.com?pool=true',
      'smtp://mail.example.com#frag',
      'smtp://mail.example.com:99999',
      'smtp://exa mple.com',
      '',
    ];
    for (const url of rejected) {
      expect(() => parseMailUrl(url), url).toThrow(/^invalid mail URL: expected smtp:\/\/host\[:port\]/);
    }
  });
});

describe('SmtpMailer construction', () => {
  it('refuses a malformed sender at construction, before any mail is sent', () => {
    for (const from of [
      '',
      'no-reply',
      'a@b.test, c@d.test',
      'Name <a@b.test',
      'Evil\r\nBcc: x@y.test <a@b.test>',
    ]) {
      expect(() => new SmtpMailer({ url: 'smtp://127.0.0.1:2525', from }), from).toThrow(
        /invalid mail sender/,
      );
    }
  });

  it('accepts a plain sender or one with a display name, opening no connection', async () => {
    for (const from of ['no-reply@strongroom.test', 'Strongroom, Inc <no-reply@strongroom.test>']) {
      await new SmtpMailer({ url: 'smtp://127.0.0.1:1', from }).close();
    }
  });
});
