// wspipe.js: one WebSocket client (Node's ws) driven by JSON lines, for
// tests/integration/wstest.py. Usage: node wspipe.js '{"url": ..., "protocols": [...], "headers": {...}}'
// stdin:  {"send": BASE64, "binary": bool} | {"ping": ""} | {"close": CODE, "reason": TEXT} | {"pause": true|false}
// stdout: {"open": PROTOCOL} | {"message": BASE64, "binary": bool} | {"close": CODE, "reason": TEXT}
//         | {"error": TEXT} | {"unexpected": STATUS, "body": TEXT} | {"pong": ""}
'use strict';
const WebSocket = require('ws');
const readline = require('readline');

const opts = JSON.parse(process.argv[2]);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const ws = new WebSocket(opts.url, opts.protocols || [], {
  headers: opts.headers || {},
  maxPayload: 64 * 1024 * 1024,
  perMessageDeflate: false,
  rejectUnauthorized: false,
});
ws.on('open', () => out({ open: ws.protocol }));
ws.on('message', (data, binary) => out({ message: Buffer.from(data).toString('base64'), binary }));
ws.on('pong', () => out({ pong: '' }));
ws.on('close', (code, reason) => { out({ close: code, reason: reason.toString() }); process.exit(0); });
ws.on('error', (e) => out({ error: e.message }));
ws.on('unexpected-response', (req, res) => {
  let body = '';
  res.on('data', (d) => { body += d; });
  res.on('end', () => { out({ unexpected: res.statusCode, body }); process.exit(0); });
});
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const c = JSON.parse(line);
  if ('send' in c) ws.send(Buffer.from(c.send, 'base64'), { binary: !!c.binary });
  else if ('ping' in c) ws.ping();
  else if ('close' in c) ws.close(c.close, c.reason || '');
  else if ('pause' in c) { if (c.pause) ws.pause(); else ws.resume(); }
  else if ('terminate' in c) { ws.terminate(); }
}).on('close', () => ws.terminate());
