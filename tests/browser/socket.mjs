// Unit test of static/js/socket.js, the realtime client of the agent workspace and the
// visitor page, against a scripted WebSocket (no browser, no server): the `since` cursor
// and resyncs, sends resent until settled, backoff with jitter, and errors reported rather
// than swallowed. tests/it/browser.rs runs it with node.
import { readFileSync } from 'node:fs';
import vm from 'node:vm';
import assert from 'node:assert/strict';

const source = readFileSync(new URL('../../static/js/socket.js', import.meta.url), 'utf8');

/** A window with a WebSocket the test drives, timers it fires by hand, and a console that
 * remembers errors. */
function world() {
  const sockets = [];
  const timers = [];
  const errors = [];
  class FakeSocket {
    static OPEN = 1;
    constructor(url) { this.url = url; this.readyState = 0; this.sent = []; sockets.push(this); }
    send(text) { assert.equal(this.readyState, 1, 'sends only on an open socket'); this.sent.push(JSON.parse(text)); }
    open() { this.readyState = 1; this.onopen(); }
    frame(f) { this.onmessage({ data: typeof f === 'string' ? f : JSON.stringify(f) }); }
    close(code) { this.readyState = 3; this.onclose({ code }); }
  }
  const window = {};
  const context = vm.createContext({
    window,
    WebSocket: FakeSocket,
    setTimeout: (fn, ms) => timers.push({ fn, ms }),
    console: { error: (...args) => errors.push(args.map(String).join(' ')) },
    Math, JSON, Number, Map, Promise,
  });
  vm.runInContext(source, context);
  return { KefuSocket: window.KefuSocket, sockets, timers, errors };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

// The cursor: message ids and sync_done move it; a resync lowers the next connection's since.
{
  const w = world();
  const frames = [];
  const sock = w.KefuSocket({ url: (since) => `ws://x/ws?since=${since}`, onFrame: (f) => frames.push(f.type), onClose: () => true });
  await sock.connect();
  assert.equal(w.sockets[0].url, 'ws://x/ws?since=0');
  w.sockets[0].open();
  w.sockets[0].frame({ type: 'message', id: 7 });
  w.sockets[0].frame({ type: 'sync_done', last_id: 9, more: false });
  w.sockets[0].frame({ type: 'message', id: 12 });
  w.sockets[0].close(1006);
  assert.equal(w.timers.length, 1, 'one reconnect scheduled');
  await w.timers.shift().fn();
  assert.equal(w.sockets[1].url, 'ws://x/ws?since=12');
  w.sockets[1].open();
  w.sockets[1].frame({ type: 'resync', since: 4 });
  w.sockets[1].frame({ type: 'resync', since: 6 });
  w.sockets[1].close(4008);
  await w.timers.shift().fn();
  assert.equal(w.sockets[2].url, 'ws://x/ws?since=4', 'the lowest resync point wins, once');
  w.sockets[2].open();
  w.sockets[2].close(1006);
  await w.timers.shift().fn();
  assert.equal(w.sockets[3].url, 'ws://x/ws?since=12');
  assert.deepEqual(frames, ['message', 'sync_done', 'message', 'resync', 'resync']);
}

// Tracked sends: sent at once when open, resent on every reconnect until settled.
{
  const w = world();
  const sock = w.KefuSocket({ url: () => 'ws://x', onFrame: () => {}, onClose: () => true });
  const a = { type: 'send', client_msg_id: 'a', body: 'one' };
  sock.sendTracked(a, 'bubble a'); // before any connection: kept
  await sock.connect();
  w.sockets[0].open();
  assert.deepEqual(w.sockets[0].sent, [a]);
  sock.sendTracked({ type: 'send', client_msg_id: 'b', body: 'two' }, 'bubble b');
  assert.equal(w.sockets[0].sent.length, 2);
  assert.equal(sock.waiting('a').data, 'bubble a');
  assert.equal(sock.settle('a').data, 'bubble a');
  assert.equal(sock.settle('a'), null, 'settled once');
  assert.equal(sock.send({ type: 'typing' }), true);
  w.sockets[0].close(1006);
  assert.equal(sock.send({ type: 'typing' }), false, 'nothing goes out while disconnected');
  await w.timers.shift().fn();
  w.sockets[1].open();
  assert.deepEqual(w.sockets[1].sent.map((f) => f.client_msg_id), ['b'], 'only what is unsettled is resent');
}

// Backoff doubles from 0.5 s to 15 s with ±25 % jitter, and resets once connected.
{
  const w = world();
  const sock = w.KefuSocket({ url: () => 'ws://x', onFrame: () => {}, onClose: () => true });
  await sock.connect();
  const delays = [];
  for (let i = 0; i < 8; i += 1) {
    w.sockets.at(-1).close(1006);
    const timer = w.timers.shift();
    delays.push(timer.ms);
    await timer.fn();
  }
  const base = [500, 1000, 2000, 4000, 8000, 15000, 15000, 15000];
  delays.forEach((ms, i) => assert.ok(ms >= base[i] * 0.75 && ms <= base[i] * 1.25, `delay ${i}: ${ms}`));
  w.sockets.at(-1).open();
  w.sockets.at(-1).close(1006);
  assert.ok(w.timers[0].ms <= 625, 'back to the first delay after a connection');
}

// The page decides: onClose false stops; a failing url asks onConnectError; stop() stops.
{
  const w = world();
  let refuse = true;
  const sock = w.KefuSocket({
    url: async () => { if (refuse) throw Object.assign(new Error('no ticket'), { status: 503 }); return 'ws://x'; },
    onFrame: () => {},
    onClose: (ev) => ev.code !== 4003,
    onConnectError: (e) => e.status === 503,
  });
  await sock.connect();
  assert.equal(w.sockets.length, 0);
  assert.equal(w.timers.length, 1, 'a retryable failure tries again');
  refuse = false;
  await w.timers.shift().fn();
  w.sockets[0].open();
  w.sockets[0].close(4003);
  assert.equal(w.timers.length, 0, 'revoked: no reconnect');
  sock.stop();
  await sock.connect();
  assert.equal(w.sockets.length, 1, 'stopped: no new connection');
}

// Errors are reported, not swallowed: a frame that is not JSON, a handler that throws.
{
  const w = world();
  const reported = [];
  const sock = w.KefuSocket({
    url: () => 'ws://x',
    onFrame: (f) => { if (f.type === 'boom') throw new Error('handler broke'); },
    onClose: () => true,
    onError: (e) => reported.push(e.message),
  });
  await sock.connect();
  w.sockets[0].open();
  w.sockets[0].frame('not json');
  w.sockets[0].frame({ type: 'boom' });
  w.sockets[0].frame({ type: 'message', id: 3 });
  assert.equal(w.errors.length, 2, w.errors.join('\n'));
  assert.match(w.errors[0], /not JSON/);
  assert.match(w.errors[1], /boom frame failed.*handler broke/);
  assert.equal(reported.length, 2);
  w.sockets[0].close(1006);
  await w.timers.shift().fn();
  assert.equal(w.sockets[1].url, 'ws://x', 'the socket goes on after a handler error');
}

await tick();
console.log('socket.js: ok');
