// Who this browser is to the server: a secret token kept in localStorage so
// that a reload or a dropped connection lands back in the same game.

const KEY = 'tictac.session';
const TOKEN = /^[0-9a-f]{32}$/;

/**
 * createSession(storage) returns {hello(), save(token)}. storage defaults to
 * localStorage; when that is unavailable (privacy modes, sandboxed frames)
 * the token lives in memory, so resume still works across reconnects of
 * this page, just not across reloads.
 */
export function createSession(storage = localStorageOrNull()) {
  let memory = null;

  function load() {
    try {
      const t = storage?.getItem(KEY) ?? memory;
      return TOKEN.test(t ?? '') ? t : null;
    } catch {
      return memory;
    }
  }

  /** hello is the first message on every socket: the token if we have one. */
  function hello() {
    const token = load();
    return { action: 'hello', data: token ? { token } : {} };
  }

  /** save keeps the token the server confirmed or issued; anything else is ignored. */
  function save(token) {
    if (typeof token !== 'string' || !TOKEN.test(token)) return;
    memory = token;
    try {
      storage?.setItem(KEY, token);
    } catch {
      // Storage full or forbidden: the in-memory copy still serves reconnects.
    }
  }

  return { hello, save };
}

function localStorageOrNull() {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null; // Some browsers throw on the mere access when storage is blocked.
  }
}
