// Move ids and resends: every fillSquare carries an id so that the server can
// apply it once however many times it arrives, and we can resend freely.

const RESEND_AFTER = 3000;

/** newMoveId returns a random id (a UUID where the browser offers one).
 *  crypto.randomUUID exists only in secure contexts (https, localhost), so a
 *  LAN address over plain http falls back to 128 random bits in hex. */
export function newMoveId(c = globalThis.crypto) {
  if (typeof c?.randomUUID === 'function') {
    try {
      return c.randomUUID();
    } catch {
      // Fall through to getRandomValues.
    }
  }
  const bytes = new Uint8Array(16);
  if (typeof c?.getRandomValues === 'function') {
    c.getRandomValues(bytes);
  } else {
    // No Web Crypto at all: uniqueness per move is all the server asks for.
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  }
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** fillSquare is the message for a pending move (the same on every resend). */
export function fillSquare(move) {
  return {
    action: 'fillSquare',
    data: { gameId: move.gameId, coords: { x: move.x, y: move.y }, moveId: move.moveId },
  };
}

/** due lists the pending moves sent more than 3 s ago without an ack. */
export function due(pending, now, after = RESEND_AFTER) {
  return pending.filter((m) => now - m.at >= after);
}
