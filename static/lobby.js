// The "Live games" panel: games in progress that anyone may watch. The
// server pushes the whole list up to twice a second, so rows are kept by
// game id and updated in place: a Watch button never vanishes under a
// pointer or from under keyboard focus just because a counter moved.

const MODE_NAMES = { quick: 'Quick match', friend: 'Friend game', bot: 'vs Computer' };
const MAX_ROWS = 30;

/** createLobby(list, empty, {onWatch}) returns {render(games), clear()}. */
export function createLobby(list, empty, { onWatch }) {
  const rows = new Map(); // gameId -> {li, title, detail, button}

  function row(gameId) {
    let r = rows.get(gameId);
    if (r) return r;
    const li = document.createElement('li');
    li.className = 'live-game';
    li.dataset.gameId = gameId;
    const text = document.createElement('span');
    text.className = 'live-text';
    const title = document.createElement('span');
    title.className = 'live-title';
    const detail = document.createElement('span');
    detail.className = 'live-detail';
    text.append(title, detail);
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'chip watch';
    button.dataset.gameId = gameId;
    button.textContent = 'Watch';
    button.addEventListener('click', () => onWatch(gameId));
    li.append(text, button);
    r = { li, title, detail, button };
    rows.set(gameId, r);
    return r;
  }

  function render(games) {
    if (!Array.isArray(games)) return;
    const wanted = games
      .filter((g) => g && typeof g.gameId === 'string' && g.gameId.length <= 64)
      .slice(0, MAX_ROWS);
    const keep = new Set(wanted.map((g) => g.gameId));
    for (const [id, r] of rows) {
      if (!keep.has(id)) {
        // Removing the focused button would drop focus to <body>; hand it on.
        if (r.li.contains(document.activeElement)) {
          const next = r.li.nextElementSibling ?? r.li.previousElementSibling;
          next?.querySelector('button')?.focus({ preventScroll: true });
        }
        r.li.remove();
        rows.delete(id);
      }
    }
    let prev = null;
    for (const g of wanted) {
      const r = row(g.gameId);
      const mode = MODE_NAMES[g.mode] ?? 'Game';
      const moves = Number.isInteger(g.move) && g.move > 0 ? g.move : 0;
      const watchers = Number.isInteger(g.spectators) && g.spectators > 0 ? g.spectators : 0;
      const detail = [moves === 0 ? 'Just started' : `Move ${moves}`];
      if (watchers) detail.push(`${watchers} watching`);
      setText(r.title, mode);
      setText(r.detail, detail.join(' · '));
      r.button.setAttribute('aria-label', `Watch ${mode.toLowerCase()}, ${detail.join(', ').toLowerCase()}`);
      // Keep the server's order without re-inserting rows that are already in place.
      const want = prev ? prev.nextSibling : list.firstChild;
      if (want !== r.li) list.insertBefore(r.li, want);
      prev = r.li;
    }
    empty.hidden = rows.size > 0;
  }

  function clear() {
    render([]);
  }

  return { render, clear };
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}
