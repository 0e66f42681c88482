import { type App, buildApp } from '../../src/http/app.ts';
import { appServices, type Core } from '../../src/main/compose.ts';

/** The HTTP app over a test core, without a socket (use `app.inject`), always ready, never draining. */
export function buildTestApp(core: Core): Promise<App> {
  return buildApp(
    { ...appServices(core), readinessChecks: {}, isDraining: () => false },
    { bodyLimitBytes: 16_384 },
  );
}

/** One request with a bearer credential (and a JSON body when given), through `app.inject`. */
export function callAs(app: App, method: string, url: string, token: string, body?: unknown) {
  return app.inject({
    method: method as 'GET',
    url,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { payload: JSON.stringify(body) } : {}),
  });
}
