import { describe, expect, it } from 'vitest';
import { parseS3Url } from './object-store.s3.ts';

describe('parseS3Url', () => {
  it('reads bucket, endpoint, region and path style', () => {
    expect(
      parseS3Url('s3://my-bucket?endpoint=http://127.0.0.1:4569&region=eu-west-1&forcePathStyle=true'),
    ).toEqual({
      bucket: 'my-bucket',
      endpoint: 'http://127.0.0.1:4569',
      region: 'eu-west-1',
      forcePathStyle: true,
    });
  });

  it('defaults to AWS in us-east-1 with virtual-hosted style', () => {
    expect(parseS3Url('s3://my-bucket')).toEqual({
      bucket: 'my-bucket',
      endpoint: undefined,
      region: 'us-east-1',
      forcePathStyle: false,
    });
  });

  it('refuses credentials in the URL, without echoing them', () => {
    for (const url of [
      's3://AKIAEXAMPLE:sup3r-secret@my-bucket?region=us-east-1',
      's3://sup3r-secret@my-bucket',
      's3://my-bucket?endpoint=https://AKIAEXAMPLE:sup3r-secret@minio.internal',
    ]) {
      expect(() => parseS3Url(url)).toThrow(/credentials are not accepted/);
      expect(() => parseS3Url(url)).not.toThrow(/sup3r-secret/);
    }
  });

  it('rejects anything it would otherwise silently ignore or misread', () => {
    const rejected = [
      'https://my-bucket',
      's3://',
      's3://My_Bucket',
      's3://my-bucket/some/prefix',
      's3://my-bucket:9000',
      's3://my-bucket?forcepathstyle=true',
      's3://my-bucket?forcePathStyle=yes',
      's3://my-bucket?endpoint=ftp://host',
      's3://my-bucket?endpoint=not a url',
      'not a url',
    ];
    for (const url of rejected) expect(() => parseS3Url(url), url).toThrow(/invalid S3 URL/);
  });
});
