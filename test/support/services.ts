import { connect } from 'node:net';

/**
 * Real servers the integration suites talk to. Each is taken from its env var when set (then it must
 * work), else probed at its usual local address. On a plain `npm test` an absent server makes its
 * suites skip with the reason in their title; with STRONGROOM_TEST_REQUIRE_SERVICES=1 (CI) an absent
 * server is an error, so CI can never pass on skipped suites.
 */
const services = {
  postgres: {
    envVar: 'STRONGROOM_TEST_POSTGRES_URL',
    defaultUrl: 'postgres://postgres@127.0.0.1:5432/postgres',
  },
  redis: { envVar: 'STRONGROOM_TEST_REDIS_URL', defaultUrl: 'redis://127.0.0.1:6379' },
  memcached: { envVar: 'STRONGROOM_TEST_MEMCACHED_URL', defaultUrl: 'memcached://127.0.0.1:11211' },
} as const;

export type ServiceName = keyof typeof services;

export interface ServiceAvailability {
  url: string | undefined;
  /** Suffix for a suite title: '' when present, else why it is skipped. */
  skipReason: string;
}

const probed = new Map<ServiceName, Promise<ServiceAvailability>>();

export function findService(name: ServiceName): Promise<ServiceAvailability> {
  let result = probed.get(name);
  if (!result) {
    result = probeService(name);
    probed.set(name, result);
  }
  return result;
}

async function probeService(name: ServiceName): Promise<ServiceAvailability> {
  const { envVar, defaultUrl } = services[name];
  const fromEnv = process.env[envVar];
  if (fromEnv) return { url: fromEnv, skipReason: '' };
  const { hostname, port } = new URL(defaultUrl);
  if (await isListening(hostname, Number(port))) return { url: defaultUrl, skipReason: '' };
  const reason = `${name} not reachable at ${hostname}:${port} (set ${envVar})`;
  if (process.env.STRONGROOM_TEST_REQUIRE_SERVICES === '1') {
    throw new Error(`STRONGROOM_TEST_REQUIRE_SERVICES=1 but ${reason}`);
  }
  console.warn(`[skip] ${reason}`);
  return { url: undefined, skipReason: ` (skipped: ${reason})` };
}

function isListening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: 500 });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('timeout', () => done(false));
    socket.once('error', () => done(false));
  });
}
