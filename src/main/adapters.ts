import { MemcachedCache } from '../adapters/cache/cache.memcached.ts';
import { MemoryCache } from '../adapters/cache/cache.memory.ts';
import { RedisCache } from '../adapters/cache/cache.redis.ts';
import { OutboxMailer } from '../adapters/mail/mailer.outbox.ts';
import { SmtpMailer } from '../adapters/mail/mailer.smtp.ts';
import { FsObjectStore } from '../adapters/object-store/object-store.fs.ts';
import { parseS3Url, S3ObjectStore } from '../adapters/object-store/object-store.s3.ts';
import type { Config } from '../config/config.ts';
import type { Cache } from '../ports/cache.port.ts';
import type { Mailer } from '../ports/mail.port.ts';
import type { ObjectStore } from '../ports/object-store.port.ts';

/** The object store named by STRONGROOM_OBJECTS: a local folder (default) or an S3 bucket. */
export function openObjectStore(settings: Config['objects']): ObjectStore {
  if (settings.kind === 'fs') return new FsObjectStore({ rootDir: settings.rootDir });
  return new S3ObjectStore({
    ...parseS3Url(settings.url),
    ...(settings.credentials
      ? {
          credentials: {
            accessKeyId: settings.credentials.accessKeyId,
            secretAccessKey: settings.credentials.secretAccessKey.reveal(),
          },
        }
      : {}),
  });
}

/** The cache named by STRONGROOM_CACHE: in-process (default), memcached or Redis. */
export function openCache(url: string): Cache {
  if (url === 'memory:') return new MemoryCache();
  if (url.startsWith('memcached://')) return new MemcachedCache({ url });
  return new RedisCache({ url });
}

/** The mailer named by STRONGROOM_MAIL: an outbox folder of .eml files (default) or an SMTP server. */
export function openMailer(settings: Config['mail']): Mailer {
  if (settings.kind === 'outbox') return new OutboxMailer({ dir: settings.dir, from: settings.from });
  return new SmtpMailer({
    url: settings.url,
    from: settings.from,
    ...(settings.auth ? { auth: settings.auth } : {}),
    ...(settings.requireTls === undefined ? {} : { requireTls: settings.requireTls }),
  });
}
