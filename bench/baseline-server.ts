// The ingest baseline, run as a child process: a bare node:http server that reads the body, JSON.parses it and
// answers 200 {"ok":true}. No validation, no storage, no fsync: the ceiling of "HTTP + JSON" on this machine.
// Prints `LISTENING <port>` once ready; exits on SIGTERM.
import http from 'node:http';

const OK = Buffer.from('{"ok":true}');

const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    try {
      JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      res.writeHead(400, { 'content-type': 'application/json' }).end('{"ok":false}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': OK.length }).end(OK);
  });
});
server.keepAliveTimeout = 30_000;

server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(`LISTENING ${typeof addr === 'object' && addr ? addr.port : 0}\n`);
});
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
