// The Node.js worker of `make bench-balancer`: an async server whose event loop one kind of
// request blocks, the most common stuck worker of all. It listens on $PORT (under tender, and
// under PM2 cluster mode, where its workers share the port), or on the port given as its first
// argument (HAProxy's backends), and answers:
//
//	/              a line, at once
//	/block?ms=N    the same after blocking the event loop N ms (default 50): a synchronous
//	               call, which serves nobody else meanwhile. Atomics.wait sleeps without
//	               spinning, so that the benchmark measures where requests wait, not how two
//	               CPUs are shared with a busy loop.
//
// Plain node, no npm package.
'use strict';
const http = require('http');

const port = Number(process.argv[2] || process.env.PORT || 8080);
const hello = Buffer.from(`hello from ${process.pid}\n`);
const sleeper = new Int32Array(new SharedArrayBuffer(4));

http.createServer((req, res) => {
  if (req.url.startsWith('/block')) {
    const m = /[?&]ms=(\d+)/.exec(req.url);
    Atomics.wait(sleeper, 0, 0, m ? Number(m[1]) : 50);
  }
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': hello.length });
  res.end(hello);
}).listen(port, '127.0.0.1');

process.on('SIGTERM', () => process.exit(0));
