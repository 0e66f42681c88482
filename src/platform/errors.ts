/**
 * One error type for the whole product. Every failure a user can see carries a stable snake_case
 * `code` (public API, listed in docs/errors.md) and a `kind`. Only the HTTP edge maps kinds to
 * statuses and only the CLI maps kinds to exit codes; services never speak HTTP.
 */
export const errorKinds = [
  'invalid',
  'unauthenticated',
  'forbidden',
  'not_found',
  'conflict',
  'precondition_failed',
  'precondition_required',
  'rate_limited',
  'too_large',
  'range_not_satisfiable',
  'unsupported',
  'unavailable',
  'integrity',
  'internal',
] as const;

export type ErrorKind = (typeof errorKinds)[number];

/** Kinds that mean something went wrong on our side rather than with the request. */
const faultKinds: ReadonlySet<ErrorKind> = new Set(['unavailable', 'integrity', 'internal']);

export type ErrorDetails = Record<string, unknown>;

export interface AppErrorInit {
  code: string;
  kind: ErrorKind;
  message: string;
  details?: ErrorDetails;
  cause?: unknown;
}

export class AppError extends Error {
  readonly code: string;
  readonly kind: ErrorKind;
  readonly details: ErrorDetails | undefined;

  constructor(init: AppErrorInit) {
    // A refusal of the caller's request is an answer, not a fault: capturing its stack trace would
    // cost more than the rest of a 429 under a flood. Faults (unavailable, integrity, internal) keep theirs.
    const stackTraceLimit = Error.stackTraceLimit;
    if (!faultKinds.has(init.kind)) Error.stackTraceLimit = 0;
    try {
      super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    } finally {
      Error.stackTraceLimit = stackTraceLimit;
    }
    this.name = 'AppError';
    this.code = init.code;
    this.kind = init.kind;
    this.details = init.details;
  }
}

export function isAppError(value: unknown): value is AppError {
  return value instanceof AppError;
}

export interface ErrorDefinition<A extends unknown[]> {
  readonly code: string;
  readonly kind: ErrorKind;
  readonly description: string;
  (...args: A): AppError;
}

/** Every definition made by `defineError`, so the catalogue (docs/errors.md) is generated from code. */
const catalogue = new Map<string, { kind: ErrorKind; description: string }>();

/**
 * Defines an error factory with a stable code (Directus `createError`, Fastify's error catalogue).
 * `describe` turns the arguments into the message and details a caller sees; it must never put a
 * secret into either.
 */
export function defineError<A extends unknown[] = []>(
  code: string,
  kind: ErrorKind,
  description: string,
  describe?: (...args: A) => { message?: string; details?: ErrorDetails; cause?: unknown },
): ErrorDefinition<A> {
  if (!/^[a-z][a-z0-9_]*$/.test(code)) throw new Error(`error code must be snake_case: ${code}`);
  const existing = catalogue.get(code);
  if (existing && existing.kind !== kind)
    throw new Error(`error code ${code} defined twice with different kinds`);
  catalogue.set(code, { kind, description });
  const factory = (...args: A): AppError => {
    const described = describe?.(...args) ?? {};
    return new AppError({
      code,
      kind,
      message: described.message ?? description,
      details: described.details,
      cause: described.cause,
    });
  };
  return Object.assign(factory, { code, kind, description });
}

export function listErrorDefinitions(): Array<{ code: string; kind: ErrorKind; description: string }> {
  return [...catalogue.entries()]
    .map(([code, value]) => ({ code, ...value }))
    .sort((a, b) => a.code.localeCompare(b.code));
}

/** Errors that belong to no single module. */
export const commonErrors = {
  invalidRequest: defineError(
    'invalid_request',
    'invalid',
    'The request is malformed or fails validation.',
    (message: string, details?: ErrorDetails) => ({ message, details }),
  ),
  internal: defineError(
    'internal_error',
    'internal',
    'Something went wrong on our side; quote the request id.',
  ),
  notFound: defineError('not_found', 'not_found', 'The resource does not exist or is not visible to you.'),
  unavailable: defineError(
    'service_unavailable',
    'unavailable',
    'A dependency is unreachable or the service is shutting down.',
    (message: string, cause?: unknown) => ({ message, cause }),
  ),
  unauthenticated: defineError(
    'unauthenticated',
    'unauthenticated',
    'A valid credential is required (Authorization: Bearer <token>).',
  ),
  tenantContextMissing: defineError(
    'tenant_context_missing',
    'forbidden',
    'Tenant data was requested without a tenant context; nothing was run.',
  ),
};
