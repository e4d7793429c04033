// Canvas renderer for the 3×3 board. It draws whatever view it is handed and
// animates only what changed since the last view; it holds no game rules.

/** PAD is the margin around the grid, as a fraction of the board's side;
 *  the input module needs it to map a pointer to a square. */
export const PAD = 0.05;

const MARK_MS = 220;
const LINE_MS = 320;

const reducedMotion = matchMedia('(prefers-reduced-motion: reduce)');

/**
 * createBoard(canvas) returns {render(view)}, where view is
 * {grid, line, winner, cursor: {x, y}|null, hover: {x, y}|null, ghost: "x"|"o"|null,
 *  pending: [{x, y, team}]} (moves sent but not on the server's grid yet).
 */
export function createBoard(canvas) {
  const ctx = canvas.getContext('2d');
  let view = null;
  let frame = 0;
  let born = [[0, 0, 0], [0, 0, 0], [0, 0, 0]]; // when each mark appeared
  let seen = [[null, null, null], [null, null, null], [null, null, null]];
  let lineBorn = 0;
  let lineKey = '';

  // The backing store follows the element's size in device pixels, so the
  // board stays sharp on HiDPI screens and after zooming.
  const resize = new ResizeObserver((entries) => {
    const entry = entries[0];
    const estimate = Math.round(entry.contentRect.width * devicePixelRatio);
    // The exact device-pixel size avoids resampling blur at fractional DPRs,
    // but some engines (and emulated DPRs) report CSS pixels there: trust it
    // only when it agrees with the estimate.
    const exact = entry.devicePixelContentBoxSize?.[0]?.inlineSize;
    setSide(exact && Math.abs(exact - estimate) <= 2 ? exact : estimate);
  });
  try {
    resize.observe(canvas, { box: 'device-pixel-content-box' });
  } catch {
    resize.observe(canvas);
  }

  // Moving the window to a screen with another density changes DPR without
  // always resizing the element; a one-shot media query catches that.
  function watchDPR() {
    const mq = matchMedia(`(resolution: ${devicePixelRatio}dppx)`);
    mq.addEventListener('change', () => {
      setSide(Math.round(canvas.getBoundingClientRect().width * devicePixelRatio));
      watchDPR();
    }, { once: true });
  }
  watchDPR();
  // Browser zoom changes DPR too and always fires resize; a cheap backstop
  // for engines that miss the media query.
  addEventListener('resize', () => {
    setSide(Math.round(canvas.getBoundingClientRect().width * devicePixelRatio));
  });

  function setSide(side) {
    if (side > 0 && canvas.width !== side) {
      canvas.width = canvas.height = side;
      schedule();
    }
  }

  // The palette is CSS; repaint when the colour scheme flips.
  matchMedia('(prefers-color-scheme: dark)').addEventListener('change', schedule);

  function render(next) {
    const now = performance.now();
    for (let x = 0; x < 3; x++) {
      for (let y = 0; y < 3; y++) {
        const mark = next.grid[x][y];
        if (mark !== seen[x][y]) born[x][y] = mark ? now : 0;
      }
    }
    seen = next.grid.map((col) => col.slice());
    const key = next.line ? JSON.stringify(next.line) : '';
    if (key !== lineKey) {
      lineKey = key;
      // Let the last mark finish before the line sweeps through it.
      lineBorn = now + (reducedMotion.matches ? 0 : MARK_MS * 0.6);
    }
    view = next;
    schedule();
  }

  function schedule() {
    if (!frame) frame = requestAnimationFrame(draw);
  }

  function draw(now) {
    frame = 0;
    if (!view || canvas.width === 0) return;
    const still = reducedMotion.matches;
    const css = getComputedStyle(canvas);
    const color = (name) => css.getPropertyValue(name).trim();
    const S = canvas.width;
    const cell = (S * (1 - 2 * PAD)) / 3;
    const origin = S * PAD;
    const center = (i) => origin + cell * (i + 0.5);
    let busy = false;

    ctx.clearRect(0, 0, S, S);
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';

    if (view.line) {
      ctx.fillStyle = color('--win-bg');
      for (const [x, y] of view.line) roundRect(origin + cell * x + cell * 0.06, origin + cell * y + cell * 0.06, cell * 0.88, cell * 0.88, cell * 0.14, true);
    }

    ctx.strokeStyle = color('--grid');
    ctx.lineWidth = Math.max(2, S * 0.012);
    for (let i = 1; i < 3; i++) {
      const p = origin + cell * i;
      line(p, origin + cell * 0.08, p, origin + cell * 2.92);
      line(origin + cell * 0.08, p, origin + cell * 2.92, p);
    }

    if (view.hover && view.ghost && !view.grid[view.hover.x][view.hover.y]) {
      ctx.globalAlpha = Number(color('--ghost')) || 0.25;
      drawMark(view.ghost, view.hover.x, view.hover.y, 1);
      ctx.globalAlpha = 1;
    }

    // A sent move shows at once, half-drawn in strength, so a slow network
    // never looks like a lost click; the server's grid replaces it.
    for (const p of view.pending ?? []) {
      if (view.grid[p.x]?.[p.y]) continue;
      ctx.globalAlpha = Math.min(1, 2 * (Number(color('--ghost')) || 0.25));
      drawMark(p.team, p.x, p.y, 1);
      ctx.globalAlpha = 1;
    }

    // Once a line is won, the other marks fade back so the win stands out.
    const lineT = view.line ? (still ? 1 : clamp((now - lineBorn) / LINE_MS)) : 0;
    const onLine = (x, y) => view.line?.some(([lx, ly]) => lx === x && ly === y);
    for (let x = 0; x < 3; x++) {
      for (let y = 0; y < 3; y++) {
        const mark = view.grid[x][y];
        if (!mark) continue;
        const t = still ? 1 : clamp((now - born[x][y]) / MARK_MS);
        if (t < 1) busy = true;
        ctx.globalAlpha = view.line && !onLine(x, y) ? 1 - 0.6 * lineT : 1;
        drawMark(mark, x, y, ease(t));
      }
    }
    ctx.globalAlpha = 1;

    if (view.line) {
      const t = lineT;
      if (t < 1) busy = true;
      if (t > 0) {
        // Endpoints are the two squares furthest apart, whatever order the server used.
        const pts = view.line.slice().sort((a, b) => a[0] - b[0] || a[1] - b[1]);
        const [ax, ay] = pts[0];
        const [bx, by] = pts[2];
        const dx = Math.sign(bx - ax) * cell * 0.32;
        const dy = Math.sign(by - ay) * cell * 0.32;
        const x0 = center(ax) - dx;
        const y0 = center(ay) - dy;
        const x1 = center(bx) + dx;
        const y1 = center(by) + dy;
        const e = ease(t);
        const xe = x0 + (x1 - x0) * e;
        const ye = y0 + (y1 - y0) * e;
        // A halo in the card's colour keeps the line clean where it crosses marks.
        ctx.strokeStyle = color('--surface');
        ctx.lineWidth = S * 0.04;
        line(x0, y0, xe, ye);
        ctx.strokeStyle = color('--win');
        ctx.lineWidth = S * 0.024;
        line(x0, y0, xe, ye);
      }
    }

    if (view.cursor) {
      const { x, y } = view.cursor;
      ctx.strokeStyle = color('--focus');
      ctx.lineWidth = Math.max(2, S * 0.01);
      roundRect(origin + cell * x + cell * 0.07, origin + cell * y + cell * 0.07, cell * 0.86, cell * 0.86, cell * 0.14, false);
    }

    if (busy) schedule();

    function drawMark(mark, x, y, t) {
      const cx = center(x);
      const cy = center(y);
      ctx.lineWidth = S * 0.032;
      if (mark === 'x') {
        const r = cell * 0.24;
        ctx.strokeStyle = color('--x');
        // Two strokes, the second starting when the first is done.
        // One path for both strokes, so a faded X does not darken where they cross.
        const a = clamp(t * 2);
        const b = clamp(t * 2 - 1);
        ctx.beginPath();
        if (a > 0) {
          ctx.moveTo(cx - r, cy - r);
          ctx.lineTo(cx - r + 2 * r * a, cy - r + 2 * r * a);
        }
        if (b > 0) {
          ctx.moveTo(cx + r, cy - r);
          ctx.lineTo(cx + r - 2 * r * b, cy - r + 2 * r * b);
        }
        ctx.stroke();
      } else {
        ctx.strokeStyle = color('--o');
        ctx.beginPath();
        ctx.arc(cx, cy, cell * 0.26, -Math.PI / 2, -Math.PI / 2 + Math.PI * 2 * t);
        ctx.stroke();
      }
    }
  }

  function line(x0, y0, x1, y1) {
    ctx.beginPath();
    ctx.moveTo(x0, y0);
    ctx.lineTo(x1, y1);
    ctx.stroke();
  }

  function roundRect(x, y, w, h, r, fill) {
    ctx.beginPath();
    ctx.roundRect(x, y, w, h, r);
    if (fill) ctx.fill();
    else ctx.stroke();
  }

  return { render };
}

function clamp(t) {
  return Math.min(1, Math.max(0, t));
}

function ease(t) {
  return 1 - (1 - t) ** 3;
}
