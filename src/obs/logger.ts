// Structured logs (pino). The raw client IP is never logged: request serialisers leave it out.
import pino from 'pino';

export type Logger = pino.Logger;

export function createLogger(level = 'info', name = 'causality'): Logger {
  return pino({
    name,
    level,
    base: { pid: process.pid },
    redact: { paths: ['req.headers["x-api-key"]', 'req.headers["x-ta-api-key"]', 'req.headers.authorization'], remove: true },
  });
}
