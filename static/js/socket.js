// The realtime client the agent workspace and the visitor page share (docs/protocol.md):
// - a `since` cursor: the highest message id this page has seen (`message` frames and
//   `sync_done`), lowered by a `resync` frame; every connection replays from it;
// - sends that wait for their ack: kept by client_msg_id, resent as they were on every
//   reconnect until the page settles them (the server drops a resent duplicate);
// - reconnecting with exponential backoff (0.5 s doubling to 15 s) and ±25 % jitter, so a
//   restarted server is not met by every tab in the same millisecond;
// - errors surfaced: a frame that is not JSON, or a page handler that throws, is reported
//   on the console (and to `onError`) instead of vanishing.
//
// KefuSocket({ url, onFrame, onOpen, onClose, onConnectError, onError }):
//   url(since)          → the socket URL (may be async: the visitor page fetches a ticket)
//   onFrame(frame)      → each frame, after the cursor has taken what it needs
//   onOpen()            → connected (pending sends go out right after)
//   onClose(event)      → the connection closed; return true to reconnect
//   onConnectError(err) → `url` failed; return true to try again later
(() => {
  'use strict';

  const MIN_DELAY = 500;
  const MAX_DELAY = 15000;

  window.KefuSocket = function KefuSocket(options) {
    const pending = new Map(); // client_msg_id -> { frame, data }
    let cursor = 0;
    let resyncFrom = null;
    let socket = null;
    let attempt = 0;
    let stopped = false;

    const report = (what, err) => {
      console.error(`kefu: ${what}`, err);
      if (options.onError) options.onError(err);
    };

    function take(frame) {
      if (frame.type === 'message' && Number.isFinite(frame.id)) cursor = Math.max(cursor, frame.id);
      if (frame.type === 'sync_done') cursor = Math.max(cursor, frame.last_id);
      if (frame.type === 'resync') resyncFrom = Math.min(resyncFrom ?? frame.since, frame.since);
    }

    function receive(ev) {
      let frame;
      try { frame = JSON.parse(ev.data); } catch (err) { report('a frame that is not JSON', err); return; }
      take(frame);
      try { options.onFrame(frame); } catch (err) { report(`handling a ${frame.type} frame failed`, err); }
    }

    function later() {
      if (stopped) return;
      const delay = Math.min(MAX_DELAY, MIN_DELAY * 2 ** attempt++) * (0.75 + Math.random() / 2);
      setTimeout(connect, delay);
    }

    async function connect() {
      if (stopped) return;
      const since = resyncFrom === null ? cursor : Math.min(cursor, resyncFrom);
      resyncFrom = null;
      let url;
      try { url = await options.url(since); } catch (err) {
        if (!options.onConnectError || options.onConnectError(err)) later();
        return;
      }
      const ws = new WebSocket(url);
      socket = ws;
      ws.onopen = () => {
        attempt = 0;
        if (options.onOpen) options.onOpen();
        for (const p of pending.values()) ws.send(JSON.stringify(p.frame));
      };
      ws.onmessage = receive;
      ws.onclose = (ev) => {
        if (socket === ws) socket = null;
        if (options.onClose && !options.onClose(ev)) return;
        later();
      };
    }

    const open = () => socket !== null && socket.readyState === WebSocket.OPEN;

    return {
      connect,
      /** Whether a frame sent now goes out. */
      open,
      /** Sends now if connected (typing, status, read marks); false when it could not. */
      send(frame) {
        if (!open()) return false;
        socket.send(JSON.stringify(frame));
        return true;
      },
      /** Sends a message that must arrive: resent on reconnect until `settle`d. `data` is
       * the page's own (the bubble showing it). */
      sendTracked(frame, data) {
        pending.set(frame.client_msg_id, { frame, data });
        if (open()) socket.send(JSON.stringify(frame));
      },
      /** Stops resending `clientMsgId` (acked, or refused for good); returns what was kept. */
      settle(clientMsgId) {
        const entry = clientMsgId && pending.get(clientMsgId);
        if (entry) pending.delete(clientMsgId);
        return entry || null;
      },
      /** What is waiting for `clientMsgId`, still kept. */
      waiting(clientMsgId) { return (clientMsgId && pending.get(clientMsgId)) || null; },
      /** Stops reconnecting (the page is going away, or access ended). */
      stop() { stopped = true; },
    };
  };
})();
