// Types of scripts/s3-dev-server.mjs for the TypeScript tests that start it in-process.
export declare const S3RVER_CREDENTIALS: { accessKeyId: string; secretAccessKey: string };
export interface S3DevServer {
  endpoint: string;
  port: number;
  close(): Promise<void>;
}
export declare function startS3DevServer(o: { port?: number; address?: string; directory: string; buckets?: string[] }): Promise<S3DevServer>;
