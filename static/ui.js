// Everything on the page around the board: status line, team badge,
// reconnect banner, "Play again", error toast and the screen-reader announcer.
// Server text only ever reaches the page through textContent.

import { result, turn } from './state.js';

const $ = (id) => document.getElementById(id);

/** statusLine turns the state into the sentence shown above the board and a tone for its colour. */
export function statusLine(state) {
  if (!state.everConnected && !state.connected) return ['Connecting…', ''];
  switch (state.phase) {
    case 'joining':
      return [state.connected ? 'Finding a game…' : 'Waiting for the connection…', ''];
    case 'idle':
      return ["Couldn't start a game.", 'bad'];
    case 'waiting':
      return ['Waiting for an opponent…', ''];
    case 'playing':
      return state.team === turn(state) ? ['Your turn', 'good'] : ["Opponent's turn", ''];
    case 'over':
      switch (result(state)) {
        case 'won': return ['You won!', 'win'];
        case 'lost': return ['You lost', 'bad'];
        case 'draw': return ["It's a draw", ''];
        case 'abandoned': return ['Your opponent left', ''];
        case 'disconnected':
          return ['Game lost: your connection dropped', 'bad'];
        default: return ['Game over', ''];
      }
    default:
      return ['', ''];
  }
}

/** createUI binds the page's elements and returns small setters for main.js. */
export function createUI({ onPlayAgain }) {
  const status = $('status');
  const team = $('team');
  const teamMark = $('team-mark');
  const banner = $('banner');
  const bannerText = $('banner-text');
  const button = $('play-again');
  const toast = $('toast');
  const announcer = $('announcer');
  let toastTimer = 0;
  let announceTimer = 0;

  button.addEventListener('click', onPlayAgain);

  function render(state) {
    const [text, tone] = statusLine(state);
    status.textContent = text;
    status.dataset.tone = tone;

    team.hidden = !state.team || state.phase === 'joining' || state.phase === 'idle';
    teamMark.textContent = state.team ? state.team.toUpperCase() : '';
    teamMark.dataset.team = state.team ?? '';

    const offer = state.phase === 'over' || state.phase === 'idle';
    // Keep keyboard focus on the button's spot: hiding a focused button would drop focus to <body>.
    const hadFocus = document.activeElement === button;
    button.hidden = !offer;
    button.textContent = state.phase === 'idle' ? 'Try again' : 'Play again';
    if (hadFocus && !offer) $('board').focus();
  }

  function setConnection(connected, everConnected) {
    banner.hidden = connected;
    bannerText.textContent = everConnected ? 'Reconnecting…' : 'Connecting to the server…';
  }

  function clearError() {
    clearTimeout(toastTimer);
    toast.hidden = true;
  }

  function showError(message) {
    toast.textContent = message;
    toast.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { toast.hidden = true; }, 3500);
  }

  // Re-setting the same text is not announced, so clear first and write on
  // the next tick; several messages in one turn are joined, not lost.
  let pending = [];
  function announce(text) {
    if (!text) return;
    pending.push(text);
    clearTimeout(announceTimer);
    announceTimer = setTimeout(() => {
      announcer.textContent = '';
      const msg = pending.join(' ');
      pending = [];
      setTimeout(() => { announcer.textContent = msg; }, 50);
    }, 0);
  }

  function focusPlayAgain() {
    if (!button.hidden) button.focus({ preventScroll: true });
  }

  return { render, setConnection, showError, clearError, announce, focusPlayAgain };
}
