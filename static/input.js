// Pointer and keyboard input on the board canvas, turned into squares.
// It decides nothing about the game: main.js judges whether a square may be played.

import { PAD } from './board.js';

/**
 * createInput(canvas, {onPlay, onChange}) tracks the hover square and the
 * keyboard cursor and returns {cursor(), hover()}; cursor() is null unless
 * the board was reached or driven with the keyboard, so mouse users never
 * see a stray focus box.
 */
export function createInput(canvas, { onPlay, onChange }) {
  let cursor = { x: 1, y: 1 };
  let keyboard = false;
  let hover = null;
  let pressed = null;

  function cellAt(ev) {
    const rect = canvas.getBoundingClientRect();
    const fx = (ev.clientX - rect.left) / rect.width;
    const fy = (ev.clientY - rect.top) / rect.height;
    const size = (1 - 2 * PAD) / 3;
    const x = Math.floor((fx - PAD) / size);
    const y = Math.floor((fy - PAD) / size);
    return x >= 0 && x < 3 && y >= 0 && y < 3 ? { x, y } : null;
  }

  const same = (a, b) => a && b && a.x === b.x && a.y === b.y;

  canvas.addEventListener('pointerdown', (ev) => {
    if (!ev.isPrimary || ev.button > 0) return;
    keyboard = false;
    pressed = cellAt(ev);
    onChange();
  });

  // A square is played on release inside the square it was pressed in, so a
  // finger that slides off can still change its mind.
  canvas.addEventListener('pointerup', (ev) => {
    if (!ev.isPrimary) return;
    const cell = cellAt(ev);
    if (cell && same(cell, pressed)) {
      cursor = cell;
      onPlay(cell);
    }
    pressed = null;
  });

  canvas.addEventListener('pointermove', (ev) => {
    // Touch has no hover; a ghost mark under a finger only hides the board.
    const cell = ev.pointerType === 'mouse' ? cellAt(ev) : null;
    if (!same(cell, hover) && (cell || hover)) {
      hover = cell;
      onChange();
    }
  });

  canvas.addEventListener('pointerleave', () => {
    if (hover) {
      hover = null;
      onChange();
    }
  });

  canvas.addEventListener('focus', () => {
    // Focus that no pointer caused came from the keyboard (Tab).
    keyboard = canvas.matches(':focus-visible');
    onChange();
  });
  canvas.addEventListener('blur', () => onChange());

  const MOVES = {
    ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1],
  };

  canvas.addEventListener('keydown', (ev) => {
    if (ev.altKey || ev.ctrlKey || ev.metaKey) return;
    const step = MOVES[ev.key];
    if (step) {
      ev.preventDefault();
      keyboard = true;
      cursor = {
        x: Math.min(2, Math.max(0, cursor.x + step[0])),
        y: Math.min(2, Math.max(0, cursor.y + step[1])),
      };
      onChange();
    } else if (ev.key === 'Enter' || ev.key === ' ') {
      ev.preventDefault();
      keyboard = true;
      onPlay({ ...cursor });
      onChange();
    } else if (ev.key === 'Home' || ev.key === 'End') {
      ev.preventDefault();
      keyboard = true;
      cursor = ev.key === 'Home' ? { x: 0, y: 0 } : { x: 2, y: 2 };
      onChange();
    }
  });

  return {
    cursor: () => (keyboard && document.activeElement === canvas ? { ...cursor } : null),
    hover: () => hover,
  };
}
