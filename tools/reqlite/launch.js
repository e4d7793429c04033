// launch.js starts reqlite, a RethinkDB server written in JavaScript, on
// loopback for the store's tests: node tools/reqlite/launch.js --port P
//
// It fixes four things in reqlite 2.3.0 that would make the tests fail or lie.
'use strict';

const crypto = require('crypto');
const net = require('net');

const lib = `${__dirname}/node_modules/reqlite/lib`;

// 1. Its SCRAM salt is not valid base64 (it appends "==" to padded base64),
// which rethinkdb-go rejects in the handshake. The constructor only sets
// fields, so replacing the salt right after it runs is enough; index.js picks
// the wrapper up from the module cache.
const connection = require.resolve(`${lib}/connection.js`);
const Connection = require(connection);
function SaltedConnection(...args) {
  Connection.apply(this, args);
  this.salt = crypto.randomBytes(16).toString('base64');
}
SaltedConnection.prototype = Connection.prototype;
require.cache[connection].exports = SaltedConnection;

// 2. It interleaves the evaluation of concurrent queries, so concurrent updates
// of one document are lost, where RethinkDB makes each single-document write
// atomic. Evaluate one query at a time: each run starts when the previous one
// has settled. Changefeeds and cursors still work: their later batches do not
// go through run.
//
// With REQLITE_SLOW_MS=N set, each query that runs N ms or longer is logged
// to stderr with its time and the start of its term, to see what holds up
// the queue.
const Query = require(`${lib}/query.js`);
const run = Query.prototype.run;
const slowMs = Number(process.env.REQLITE_SLOW_MS || 'NaN');
let tail = Promise.resolve();
Query.prototype.run = function (...args) {
  const result = tail.then(() => {
    if (!(slowMs >= 0)) {
      return run.apply(this, args);
    }
    const start = process.hrtime.bigint();
    const logSlow = () => {
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      if (ms >= slowMs) {
        console.error(`slow query ${ms.toFixed(2)} ms: ${JSON.stringify((args[0] || this.query)[1]).slice(0, 200)}`);
      }
    };
    const p = Promise.resolve(run.apply(this, args));
    p.then(logSlow, logSlow);
    return p;
  });
  tail = result.catch(() => {});
  return result;
};

// 3. It fails on an empty array sent as [2] (MAKE_ARRAY with its arguments
// left out), which is valid ReQL and how rethinkdb-go encodes an empty slice.
const evaluate = Query.prototype.evaluate;
Query.prototype.evaluate = function (term, ...args) {
  if (Array.isArray(term) && term.length === 1 && term[0] === 2) {
    term = [2, []];
  }
  return evaluate.call(this, term, ...args);
};

// 4. It listens on every interface; bind to loopback (its only server).
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (port, cb) {
  return listen.call(this, port, '127.0.0.1', cb);
};

const i = process.argv.indexOf('--port');
const port = Number(i >= 0 ? process.argv[i + 1] : NaN);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: node launch.js --port PORT');
  process.exit(2);
}
const Server = require(`${lib}/index.js`);
new Server({ 'driver-port': port });
