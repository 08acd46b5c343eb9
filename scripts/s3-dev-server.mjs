#!/usr/bin/env node
// A local S3-compatible server (s3rver) for development, tests and the multi-process setup, for users without S3.
//   node scripts/s3-dev-server.mjs [--port 4568] [--address 127.0.0.1] [--dir ./data/s3] [--bucket causality]
// Then: S3_ENDPOINT=http://127.0.0.1:4568 S3_BUCKET=causality S3_ACCESS_KEY_ID=S3RVER S3_SECRET_ACCESS_KEY=S3RVER
import crypto from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import S3rver from 's3rver';

/** s3rver's credentials (it checks signatures). */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

/**
 * s3rver writes an object in place while it streams in, so a reader could see part of it; S3 (and MinIO) make an
 * object visible whole or not at all. Written beside it and renamed, as they behave.
 */
function makePutsAtomic(store) {
  store.putObject = async function putObjectAtomically(object) {
    const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
    const tmp = `${objectPath}.${process.pid}.${Math.random().toString(36).slice(2)}.partial`;
    await mkdir(dirname(objectPath), { recursive: true });
    const md5 = crypto.createHash('md5');
    let size = 0;
    try {
      const content = Buffer.isBuffer(object.content) ? [object.content] : object.content;
      await pipeline(
        content,
        async function* (source) {
          for await (const chunk of source) {
            md5.update(chunk);
            size += chunk.length;
            yield chunk;
          }
        },
        createWriteStream(tmp),
      );
      const digest = md5.digest('hex');
      await this.putMetadata(object.bucket, object.key, object.metadata, digest);
      await rename(tmp, objectPath);
      return { size, md5: digest };
    } finally {
      await rm(tmp, { force: true });
    }
  };
}

/**
 * s3rver's ListObjectsV2 continuation tokens are DES-encrypted, and OpenSSL 3 refuses DES: every truncated listing
 * fails. Its tokens only need to round-trip, so in this process 'des' becomes the identity.
 */
function makeContinuationTokensWork() {
  if (crypto.createCipheriv.name === 'createCipherivWithoutDes') return;
  const identity = () => ({ update: (data, enc) => (Buffer.isBuffer(data) ? data : Buffer.from(data, enc)), final: () => Buffer.alloc(0) });
  const createCipheriv = crypto.createCipheriv;
  const createDecipheriv = crypto.createDecipheriv;
  crypto.createCipheriv = function createCipherivWithoutDes(algorithm, ...rest) {
    return algorithm === 'des' ? identity() : createCipheriv.call(crypto, algorithm, ...rest);
  };
  crypto.createDecipheriv = function createDecipherivWithoutDes(algorithm, ...rest) {
    return algorithm === 'des' ? identity() : createDecipheriv.call(crypto, algorithm, ...rest);
  };
}

/** Starts s3rver on `port` (0 = any free one) with `buckets` created; resolves once it listens. */
export async function startS3DevServer({ port = 4568, address = '127.0.0.1', directory, buckets = ['causality'] }) {
  await mkdir(directory, { recursive: true });
  const server = new S3rver({ port, address, directory, silent: true, configureBuckets: buckets.map((name) => ({ name })) });
  makePutsAtomic(server.store);
  makeContinuationTokensWork();
  const info = await server.run();
  const endpoint = `http://${address}:${info.port}`;
  return {
    endpoint,
    port: info.port,
    close: () => server.close(),
  };
}

async function main() {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: process.env.S3_DEV_PORT ?? '4568' },
      address: { type: 'string', default: '127.0.0.1' },
      dir: { type: 'string', default: './data/s3' },
      bucket: { type: 'string', multiple: true, default: [process.env.S3_BUCKET || 'causality'] },
    },
  });
  const s = await startS3DevServer({ port: Number(values.port), address: values.address, directory: values.dir, buckets: values.bucket });
  console.log(JSON.stringify({ endpoint: s.endpoint, buckets: values.bucket, dir: values.dir, ...S3RVER_CREDENTIALS }));
  await Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')]);
  await s.close();
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
