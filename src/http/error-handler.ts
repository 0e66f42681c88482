import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { AppError, defineError, type ErrorKind, isAppError } from '../platform/errors.ts';

/** A Fastify app whatever its server (HTTP or HTTPS), logger and type provider. */
// biome-ignore lint/suspicious/noExplicitAny: Fastify's generics have no common supertype to name instead.
export type AnyFastify = FastifyInstance<any, any, any, any, any>;

/** The only place that turns an error kind into an HTTP status. */
export const statusByKind: Record<ErrorKind, number> = {
  invalid: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  precondition_failed: 412,
  too_large: 413,
  range_not_satisfiable: 416,
  precondition_required: 428,
  unsupported: 415,
  rate_limited: 429,
  unavailable: 503,
  // Stored bytes failed authentication or their checksum: the store upstream of us served bad data.
  integrity: 502,
  internal: 500,
};

export const httpErrors = {
  routeNotFound: defineError(
    'route_not_found',
    'not_found',
    'No such endpoint.',
    (method: string, url: string) => ({
      message: `no endpoint ${method} ${url.split('?')[0]}`,
    }),
  ),
  malformedJson: defineError('malformed_json', 'invalid', 'The request body is not valid JSON.'),
  invalidUtf8: defineError(
    'invalid_utf8',
    'invalid',
    'The request body is not valid UTF-8 (JSON must be); nothing in it was taken.',
  ),
  duplicateJsonKey: defineError(
    'duplicate_json_key',
    'invalid',
    'The JSON body has an object with the same key twice; which one was meant is ambiguous, so neither is taken.',
    (key: string) => ({
      message: `the JSON body repeats the key ${JSON.stringify(key.slice(0, 100))} in one object`,
      details: { key: key.slice(0, 100) },
    }),
  ),
  payloadTooLarge: defineError(
    'payload_too_large',
    'too_large',
    'The request body is larger than allowed.',
    (limitBytes: number) => ({
      message: `the request body exceeds ${limitBytes} bytes`,
      details: { limitBytes },
    }),
  ),
  unsupportedMediaType: defineError(
    'unsupported_media_type',
    'unsupported',
    'The request body has a content type this endpoint does not accept.',
  ),
  httpsRequired: defineError(
    'https_required',
    'forbidden',
    'The API is served over HTTPS only; plain HTTP requests are refused, never redirected.',
  ),
  badUrl: defineError('invalid_url', 'invalid', 'The URL is malformed (bad percent-encoding).'),
  urlTooLong: defineError(
    'url_too_long',
    'too_large',
    'A path parameter is longer than allowed (answered with 414).',
  ),
  draining: defineError(
    'shutting_down',
    'unavailable',
    'The server is shutting down; retry on another node.',
  ),
};

export interface ErrorBody {
  error: { code: string; message: string; requestId: string; details?: Record<string, unknown> };
}

/**
 * One JSON error model for every failure: `{error: {code, message, requestId, details?}}` with a
 * stable snake_case code. Unknown errors become `internal_error`; their cause is logged with the
 * request id and never sent. No stack trace or SQL reaches a client.
 */
export function registerErrorHandling(app: AnyFastify, options: { bodyLimitBytes: number }): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const appError = toAppError(error, options.bodyLimitBytes);
    // Integrity failures mean stored data was damaged or tampered with: an operator must hear of it.
    if (appError.kind === 'internal' || appError.kind === 'integrity') {
      request.log.error({ err: error, requestId: request.id }, 'request failed');
    }
    return sendError(request, reply, appError);
  });
  app.setNotFoundHandler((request, reply) =>
    sendError(request, reply, httpErrors.routeNotFound(request.method, request.url)),
  );
}

export function sendError(
  request: FastifyRequest,
  reply: FastifyReply,
  error: AppError,
  status: number = statusByKind[error.kind],
): FastifyReply {
  const body: ErrorBody = { error: { code: error.code, message: error.message, requestId: request.id } };
  if (error.details !== undefined) body.error.details = error.details;
  if (error.kind === 'unauthenticated') reply.header('www-authenticate', 'Bearer');
  const retryAfter = error.details?.retryAfterSeconds;
  if (typeof retryAfter === 'number') reply.header('retry-after', String(retryAfter));
  const sizeBytes = error.details?.sizeBytes;
  if (error.kind === 'range_not_satisfiable' && typeof sizeBytes === 'number') {
    reply.header('content-range', `bytes */${sizeBytes}`);
  }
  return reply.status(status).type('application/json; charset=utf-8').send(body);
}

/**
 * Errors Fastify raises before routing (a malformed or over-long URL), given to `frameworkErrors`.
 */
export function handleFrameworkError(
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
): void {
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') sendError(request, reply, httpErrors.urlTooLong(), 414);
  else if (error.code === 'FST_ERR_BAD_URL') sendError(request, reply, httpErrors.badUrl());
  else
    sendError(
      request,
      reply,
      new AppError({ code: 'invalid_request', kind: 'invalid', message: 'the request is malformed' }),
    );
}

export function toAppError(error: FastifyError, bodyLimitBytes: number): AppError {
  if (isAppError(error)) return error;
  if (hasZodFastifySchemaValidationErrors(error)) {
    const issues = error.validation.map((v) => ({
      where: error.validationContext ?? 'body',
      path: v.instancePath || '/',
      message: v.message ?? 'invalid',
    }));
    return new AppError({
      code: 'invalid_request',
      kind: 'invalid',
      message: `invalid ${error.validationContext ?? 'request'}: ${issues.map((i) => `${i.path} ${i.message}`).join('; ')}`,
      details: { issues },
    });
  }
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return httpErrors.payloadTooLarge(bodyLimitBytes);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return httpErrors.unsupportedMediaType();
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return httpErrors.malformedJson();
  }
  // Fastify's body parser reports bad JSON as a SyntaxError with status 400.
  if (error instanceof SyntaxError && error.statusCode === 400) return httpErrors.malformedJson();
  if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
    return new AppError({ code: 'invalid_request', kind: 'invalid', message: 'the request is malformed' });
  }
  return new AppError({
    code: 'internal_error',
    kind: 'internal',
    message: 'internal error; quote the request id',
    cause: error,
  });
}
