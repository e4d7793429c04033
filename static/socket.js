// One WebSocket to /live that heals itself: the rest of the page only sees
// parsed messages and "up"/"down", never a dead socket.

/** liveURL builds the socket address from the page's own, so the page works
 *  on any host and upgrades to wss: when served over https:. */
export function liveURL(loc) {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}/live`;
}

/**
 * createSocket returns {connect, send, release, clearQueue, isOpen}.
 * Messages sent while closed wait in a queue. On every open, greeting() is
 * sent first and the queue is held until release() (main.js calls it when
 * the server has answered the greeting), so that nothing reaches the server
 * before it knows who we are. Reconnects use exponential backoff and jitter
 * so that a server restart is not greeted by every tab at the same instant.
 */
export function createSocket({
  url,
  onMessage,
  greeting = null,
  onUp = () => {},
  onDown = () => {},
  onRetry = () => {},
  baseDelay = 500,
  maxDelay = 10_000,
  pingEvery = 25_000,
}) {
  let ws = null;
  let open = false;
  let attempt = 0;
  let retryTimer = 0;
  let pingTimer = 0;
  let lastHeard = 0;
  let held = false;
  const queue = [];

  function connect() {
    clearTimeout(retryTimer);
    retryTimer = 0;
    let sock;
    try {
      sock = new WebSocket(url);
    } catch {
      scheduleRetry();
      return;
    }
    ws = sock;
    sock.onopen = () => {
      open = true;
      attempt = 0;
      lastHeard = Date.now();
      pingTimer = setInterval(ping, pingEvery);
      held = Boolean(greeting);
      if (greeting) sock.send(JSON.stringify(greeting()));
      onUp();
      flush();
    };
    sock.onmessage = (ev) => {
      lastHeard = Date.now();
      if (typeof ev.data !== 'string') return;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return; // A garbled frame is not worth breaking the page over.
      }
      if (msg && typeof msg.action === 'string') onMessage(msg);
    };
    // onerror is always followed by onclose, which does the work.
    sock.onerror = () => {};
    sock.onclose = () => lost(sock);
  }

  function lost(sock) {
    if (sock !== ws) return;
    sock.onopen = sock.onmessage = sock.onclose = null;
    ws = null;
    clearInterval(pingTimer);
    const wasOpen = open;
    open = false;
    if (wasOpen) onDown();
    scheduleRetry();
  }

  function scheduleRetry() {
    const cap = Math.min(maxDelay, baseDelay * 2 ** attempt);
    const delay = Math.round(cap / 2 + Math.random() * (cap / 2));
    attempt++;
    retryTimer = setTimeout(connect, delay);
    onRetry(delay);
  }

  function ping() {
    // A socket that has heard nothing, not even a pong, for two pings is
    // half-open (a phone that changed networks): drop it rather than wait
    // for TCP to notice.
    if (Date.now() - lastHeard > 2 * pingEvery + 5_000) {
      const sock = ws;
      try { sock.close(4000, 'no pong'); } catch { /* already closing */ }
      lost(sock);
      return;
    }
    ws.send(JSON.stringify({ action: 'ping' }));
  }

  function flush() {
    while (open && !held && queue.length) ws.send(queue.shift());
  }

  function release() {
    held = false;
    flush();
  }

  function send(msg) {
    queue.push(JSON.stringify(msg));
    flush();
  }

  // Coming back online is a better hint than any backoff timer.
  addEventListener('online', () => {
    if (!ws && retryTimer) {
      attempt = 0;
      connect();
    }
  });

  return {
    connect,
    send,
    release,
    clearQueue: () => { queue.length = 0; },
    isOpen: () => open,
  };
}
