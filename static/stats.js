// The live stats panel. The server sends the whole set once and then only
// what changed, so values are merged by id and every id keeps its tile.

const LABELS = [
  ['totalGames', 'Games played'],
  ['totalMoves', 'Moves'],
  ['wonByX', 'Won by X'],
  ['wonByO', 'Won by O'],
  ['tiedGames', 'Draws'],
  ['abandonedGames', 'Abandoned'],
  ['gamesInProgress', 'Games in progress'],
  ['playersOnline', 'Players online'],
];

const number = new Intl.NumberFormat();

/** createStats fills the <dl> with one tile per stat and returns {update(list), setStale(bool)}. */
export function createStats(dl) {
  const values = new Map();
  const cells = new Map();

  for (const [id, label] of LABELS) {
    const wrap = document.createElement('div');
    wrap.className = 'stat';
    wrap.dataset.id = id;
    const dt = document.createElement('dt');
    dt.textContent = label;
    const dd = document.createElement('dd');
    dd.textContent = '–';
    wrap.append(dt, dd);
    dl.append(wrap);
    cells.set(id, { wrap, dd });
  }

  function update(list) {
    if (!Array.isArray(list)) return;
    for (const item of list) {
      const cell = cells.get(item?.id);
      const value = Number(item?.value);
      if (!cell || !Number.isFinite(value) || values.get(item.id) === value) continue;
      const first = !values.has(item.id);
      values.set(item.id, value);
      cell.dd.textContent = number.format(value);
      if (!first) bump(cell.wrap);
    }
  }

  // While the socket is down the numbers are old news; say so by dimming them.
  function setStale(stale) {
    dl.classList.toggle('stale', stale);
  }

  return { update, setStale };
}

// A short highlight draws the eye to a counter that just moved; the CSS
// transition on .stat fades it out (and reduced motion turns that off).
function bump(el) {
  el.classList.add('bumped');
  requestAnimationFrame(() => requestAnimationFrame(() => el.classList.remove('bumped')));
}
