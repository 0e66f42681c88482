import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * Structured JSON logs (pino). Credentials are redacted by path as a second line of defence; the
 * first is that secrets travel as `Secret` values, which print as "[redacted]".
 */
export function createLogger(options: { level: string; name?: string }): Logger {
  return pino({
    level: options.level,
    name: options.name ?? 'strongroom',
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers.cookie',
        'req.headers["x-api-key"]',
        'res.headers["set-cookie"]',
        '*.password',
        '*.token',
        '*.apiKey',
        '*.ownerSetupToken',
        '*.masterKey',
      ],
      censor: '[redacted]',
    },
  });
}
