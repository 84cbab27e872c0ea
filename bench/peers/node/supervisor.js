'use strict';
// A WebSocket supervisor written the way the `ws` README teaches it: one timer pings every open
// socket each interval; a socket whose pong has not come back by the next tick (isAlive still
// false) is terminated and redialled. So the pong timeout is the interval itself.
//
//   node supervisor.js --endpoints FILE [--interval-ms 1000] [--connect-concurrency 500]
//                      [--ca PEM]
//
// FILE has one "id url" per line. For wss:// URLs, --ca is the CA the server certificate must
// chain to (verification stays on, as `ws` has it by default). Prints one JSON line of counters per second on stdout:
//   {"t_us":..., "open":..., "pings":..., "pongs":..., "terminated":..., "opened":..., "closed":...}
const fs = require('fs');
const tls = require('tls');
const WebSocket = require('ws');

const args = {};
for (let i = 2; i + 1 < process.argv.length; i += 2) args[process.argv[i]] = process.argv[i + 1];
const intervalMs = Number(args['--interval-ms'] || 1000);
const connectConcurrency = Number(args['--connect-concurrency'] || 500);
// One TLS context shared by every connection, as a careful Node program would build it: passing
// `ca` itself would make `tls.connect` parse the PEM into a new context on every dial.
const dialOptions = args['--ca']
  ? { secureContext: tls.createSecureContext({ ca: fs.readFileSync(args['--ca']) }) }
  : {};
const urls = fs.readFileSync(args['--endpoints'], 'utf8')
  .split('\n').filter(Boolean).map((line) => line.split(' ')[1]);

const stats = { open: 0, pings: 0, pongs: 0, terminated: 0, opened: 0, closed: 0, errors: 0 };
const sockets = new Set();
const queue = [];   // urls waiting for a connection slot
let connecting = 0;

function heartbeat() { this.isAlive = true; stats.pongs++; }

function dial(url) {
  connecting++;
  const ws = new WebSocket(url, dialOptions);
  let opened = false;
  ws.on('open', () => {
    opened = true;
    connecting--;
    pump();
    ws.isAlive = true;
    sockets.add(ws);
    stats.open++;
    stats.opened++;
  });
  ws.on('pong', heartbeat);
  ws.on('error', () => { stats.errors++; });
  ws.on('close', () => {
    if (opened) {
      sockets.delete(ws);
      stats.open--;
      stats.closed++;
    } else {
      connecting--;
      pump();
    }
    // Redial after about a second, with jitter.
    setTimeout(() => { queue.push(url); pump(); }, 1000 + Math.random() * 200);
  });
}

function pump() {
  while (connecting < connectConcurrency && queue.length > 0) dial(queue.shift());
}

const interval = setInterval(function ping() {
  for (const ws of sockets) {
    if (ws.isAlive === false) { stats.terminated++; ws.terminate(); continue; }
    ws.isAlive = false;
    ws.ping();
    stats.pings++;
  }
}, intervalMs);

setInterval(() => {
  const [s, ns] = process.hrtime();  // monotonic; the runner uses its own clock for windows
  process.stdout.write(JSON.stringify({ t_mono_s: s + ns / 1e9, ...stats }) + '\n');
}, 1000);

process.stdin.on('end', () => { clearInterval(interval); process.exit(0); });
process.stdin.resume();
for (const url of urls) queue.push(url);
pump();
