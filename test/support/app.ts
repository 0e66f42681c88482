import { type App, buildApp } from '../../src/http/app.ts';
import { appServices, type Core } from '../../src/main/compose.ts';

/** The HTTP app over a test core, without a socket (use `app.inject`), always ready, never draining. */
export function buildTestApp(core: Core): Promise<App> {
  return buildApp(
    { ...appServices(core), readinessChecks: {}, isDraining: () => false },
    { bodyLimitBytes: 16_384 },
  );
}
