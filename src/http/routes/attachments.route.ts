import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Attachment, AttachmentVersion } from '../../modules/attachments/attachment.repository.ts';
import {
  type AttachmentService,
  maxAttachmentListLimit,
  type Upload,
} from '../../modules/attachments/attachment.service.ts';
import { contentDisposition, decodeFilenameHeader } from '../../modules/attachments/attachment-input.ts';
import { etagOf, parseIfMatch } from '../../modules/records/record-data.ts';
import { requireUser } from '../plugins/session-auth.ts';
import { errorResponseSchema, errorResponses } from '../presenters.ts';

const attachmentSchema = z.object({
  id: z.uuid(),
  projectId: z.uuid(),
  recordId: z.uuid().nullable(),
  version: z.number().int(),
  filename: z.string(),
  contentType: z.string(),
  sizeBytes: z.number().int(),
  sha256: z.string().describe('SHA-256 of the file, hex'),
  createdBy: z.uuid(),
  updatedBy: z.uuid(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});
const versionSchema = z.object({
  version: z.number().int(),
  filename: z.string(),
  contentType: z.string(),
  sizeBytes: z.number().int(),
  sha256: z.string(),
  createdBy: z.uuid(),
  createdAt: z.iso.datetime(),
});
const projectParams = z.strictObject({ projectId: z.uuid() });
const attachmentParams = z.strictObject({ projectId: z.uuid(), attachmentId: z.uuid() });
const uploadHeaders = z.object({
  'content-type': z.string().max(300).optional().describe('The file type; default application/octet-stream'),
  'x-filename': z.string().max(1000).optional().describe('The filename, percent-encoded UTF-8'),
});
const errors = errorResponses(400, 401, 403, 404);
const uploadErrors = { ...errors, 413: errorResponseSchema, 502: errorResponseSchema };
const changeErrors = { ...errors, 412: errorResponseSchema, 428: errorResponseSchema };

function present(attachment: Attachment) {
  return {
    ...attachment,
    createdAt: attachment.createdAt.toISOString(),
    updatedAt: attachment.updatedAt.toISOString(),
  };
}

function presentVersion(version: AttachmentVersion) {
  return {
    version: version.version,
    filename: version.filename,
    contentType: version.contentType,
    sizeBytes: version.sizeBytes,
    sha256: version.sha256.toString('hex'),
    createdBy: version.createdBy,
    createdAt: version.createdAt.toISOString(),
  };
}

function uploadOf(
  request: FastifyRequest,
  query: { filename?: string | undefined; recordId?: string | undefined },
): Upload {
  const declared = request.headers['content-length'];
  return {
    body: request.raw,
    filename: query.filename ?? decodeFilenameHeader(headerValue(request.headers['x-filename'])),
    contentType: headerValue(request.headers['content-type']),
    recordId: query.recordId,
    declaredBytes: declared === undefined ? undefined : Number(declared),
  };
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Attachments of a project (tenant scope): raw bodies in, bytes out, never buffered whole. Reading
 * needs `attachments.read` in the project (viewer and up, or an account owner or admin), writing
 * `attachments.write` (contributor and up). Downloads are always `Content-Disposition: attachment`
 * with `nosniff` and a `default-src 'none'` policy, so a stored file is never rendered as our page.
 */
export function attachmentRoutes(deps: { attachments: AttachmentService }): FastifyPluginAsyncZod {
  const { attachments } = deps;
  const security = [{ session: [] }];
  return async (app) => {
    // Uploads are streamed by the service, whatever their type; no parser touches the body here.
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));
    // An upload refused before its body was read: close the connection rather than read it all.
    app.addHook('onSend', async (request, reply) => {
      if (reply.statusCode >= 400 && !request.raw.complete) reply.header('connection', 'close');
    });

    app.put(
      '/projects/:projectId/attachments',
      {
        schema: {
          summary: 'Upload a file (contributor, project admin, account owner or admin)',
          description:
            'The request body is the file, streamed as is (any Content-Type). Name it with `?filename=` or an `X-Filename` header (percent-encoded UTF-8); link it to a record with `?recordId=`. Answers only after the encrypted object is stored and its metadata committed.',
          tags: ['attachments'],
          security,
          params: projectParams,
          headers: uploadHeaders,
          querystring: z.strictObject({
            filename: z.string().max(1000).optional(),
            recordId: z.uuid().optional(),
          }),
          response: { 201: attachmentSchema, ...uploadErrors },
        },
      },
      async (request, reply) => {
        const attachment = await attachments.create(
          requireUser(request).principal,
          request.params.projectId,
          uploadOf(request, request.query),
        );
        reply.header('etag', etagOf(attachment.version));
        reply.header('location', `${request.url.split('?')[0]}/${attachment.id}`);
        return reply.status(201).send(present(attachment));
      },
    );

    app.put(
      '/projects/:projectId/attachments/:attachmentId',
      {
        schema: {
          summary: 'Upload a new version of a file; needs If-Match (contributor and up)',
          description: 'Earlier versions stay readable in backups for the restore window.',
          tags: ['attachments'],
          security,
          params: attachmentParams,
          headers: uploadHeaders.extend({ 'if-match': z.string().max(100).optional() }),
          querystring: z.strictObject({ filename: z.string().max(1000).optional() }),
          response: { 200: attachmentSchema, ...uploadErrors, ...changeErrors },
        },
      },
      async (request, reply) => {
        const { projectId, attachmentId } = request.params;
        const version = parseIfMatch(request.headers['if-match']);
        const attachment = await attachments.replace(
          requireUser(request).principal,
          projectId,
          attachmentId,
          version,
          uploadOf(request, request.query),
        );
        reply.header('etag', etagOf(attachment.version));
        return present(attachment);
      },
    );

    app.get(
      '/projects/:projectId/attachments',
      {
        schema: {
          summary: 'List files in upload order, optionally those of one record (viewer and up)',
          tags: ['attachments'],
          security,
          params: projectParams,
          querystring: z.strictObject({
            recordId: z.uuid().optional(),
            limit: z.coerce.number().int().min(1).max(maxAttachmentListLimit).default(50),
            cursor: z.string().max(200).optional().describe('nextCursor of the previous page'),
          }),
          response: {
            200: z.object({ items: z.array(attachmentSchema), nextCursor: z.string().nullable() }),
            ...errors,
          },
        },
      },
      async (request) => {
        const page = await attachments.list(
          requireUser(request).principal,
          request.params.projectId,
          request.query,
        );
        return { items: page.items.map(present), nextCursor: page.nextCursor };
      },
    );

    app.get(
      '/projects/:projectId/attachments/:attachmentId',
      {
        schema: {
          summary: 'Download a file (viewer and up); supports one Range',
          description:
            'Every chunk is authenticated before it is sent, and a whole-file read is checked against its SHA-256 (also in `Repr-Digest`). A file that fails either is never served: `502 integrity_error`, or, if that is found after the first bytes went out, the connection is cut short of Content-Length.',
          tags: ['attachments'],
          security,
          params: attachmentParams,
          headers: z.object({ range: z.string().max(200).optional().describe('bytes=start-end') }),
          response: { ...errors, 416: errorResponseSchema, 502: errorResponseSchema },
        },
      },
      async (request, reply) => {
        const { projectId, attachmentId } = request.params;
        const download = await attachments.read(
          requireUser(request).principal,
          projectId,
          attachmentId,
          request.headers.range,
        );
        return sendDownload(reply, download);
      },
    );

    app.get(
      '/projects/:projectId/attachments/:attachmentId/metadata',
      {
        schema: {
          summary: "A file's metadata and its versions, newest first (viewer and up)",
          tags: ['attachments'],
          security,
          params: attachmentParams,
          response: {
            200: attachmentSchema.extend({ versions: z.array(versionSchema) }),
            ...errors,
          },
        },
      },
      async (request, reply) => {
        const { projectId, attachmentId } = request.params;
        const { attachment, versions } = await attachments.get(
          requireUser(request).principal,
          projectId,
          attachmentId,
        );
        reply.header('etag', etagOf(attachment.version));
        return { ...present(attachment), versions: versions.map(presentVersion) };
      },
    );

    app.delete(
      '/projects/:projectId/attachments/:attachmentId',
      {
        schema: {
          summary: 'Delete a file; needs If-Match (contributor and up)',
          description:
            'Writes a tombstone: the file is gone at once for the API; its stored versions are purged once they have left the restore window.',
          tags: ['attachments'],
          security,
          params: attachmentParams,
          headers: z.object({ 'if-match': z.string().max(100).optional() }),
          response: { 204: z.null(), ...changeErrors },
        },
      },
      async (request, reply) => {
        const { projectId, attachmentId } = request.params;
        const version = parseIfMatch(request.headers['if-match']);
        await attachments.delete(requireUser(request).principal, projectId, attachmentId, version);
        return reply.status(204).send(null);
      },
    );
  };
}

function sendDownload(reply: FastifyReply, download: Awaited<ReturnType<AttachmentService['read']>>) {
  const { attachment, range, body } = download;
  reply
    .header('content-type', attachment.contentType)
    .header('content-disposition', contentDisposition(attachment.filename))
    .header('x-content-type-options', 'nosniff')
    .header('accept-ranges', 'bytes')
    .header('etag', etagOf(attachment.version))
    .header('last-modified', attachment.updatedAt.toUTCString());
  if (!range) {
    reply
      .header('content-length', String(attachment.sizeBytes))
      .header('repr-digest', `sha-256=:${Buffer.from(attachment.sha256, 'hex').toString('base64')}:`);
    return reply.status(200).send(body);
  }
  reply
    .header('content-range', `bytes ${range.start}-${range.end}/${range.sizeBytes}`)
    .header('content-length', String(range.end - range.start + 1));
  return reply.status(206).send(body);
}
