// Wires the socket, the game state and the views together. Side effects
// (sending, announcing, focus) live here so the other modules stay simple.

import { liveURL, createSocket } from './socket.js';
import { initialState, reduce, canPlay, turn, result } from './state.js';
import { createBoard } from './board.js';
import { createInput } from './input.js';
import { createStats } from './stats.js';
import { createUI, statusLine } from './ui.js';
import { cellName, describeGrid, describeLine } from './names.js';

const JOIN = { action: 'joinGame', data: null };

const canvas = document.getElementById('board');
let state = initialState();
// Set when a game ends while the board has focus: keyboard users land on "Play again".
let focusPlayAgain = false;

const board = createBoard(canvas);
const stats = createStats(document.getElementById('stats'));
const ui = createUI({ onPlayAgain: join });
const input = createInput(canvas, { onPlay: play, onChange: paint });

const socket = createSocket({
  url: liveURL(location),
  onMessage: receive,
  onUp() {
    const { lostConnection, everConnected } = state;
    dispatch({ action: 'local:up' });
    ui.setConnection(true, true);
    stats.setStale(false);
    // The first connection is not news; coming back is.
    if (lostConnection) {
      ui.announce('Reconnected. Your game was lost because the connection dropped. Choose Play again for a new game.');
    } else if (everConnected) {
      ui.announce('Reconnected.');
    }
  },
  onRetry() {
    // Only after a first failure: a page that connects at once never flashes the banner.
    ui.setConnection(false, state.everConnected);
  },
  onDown() {
    // Whatever was queued belonged to the old socket's game.
    socket.clearQueue();
    dispatch({ action: 'local:down' });
    ui.setConnection(false, true);
    stats.setStale(true);
    // The reducer put a waiting player back in line: ask again on the next socket.
    if (state.phase === 'joining') socket.send(JOIN);
    ui.announce(state.lostConnection
      ? 'Connection lost. This game cannot be resumed. Reconnecting.'
      : 'Connection lost. Reconnecting.');
  },
});

function join() {
  dispatch({ action: 'local:join' });
  socket.send(JOIN);
}

function play({ x, y }) {
  if (canPlay(state, x, y)) {
    socket.send({ action: 'fillSquare', data: { gameId: state.gameId, coords: { x, y } } });
    return;
  }
  // Say why nothing happened instead of sending a move the server will refuse.
  if (state.phase !== 'playing') return;
  if (state.team !== turn(state)) ui.showError("It's your opponent's turn.");
  else if (state.grid[x][y]) ui.showError('That square is taken.');
}

function receive(msg) {
  if (msg.action === 'statsUpdate') {
    stats.update(msg.data);
    return;
  }
  if (msg.action === 'error') {
    ui.showError(msg.data?.message || `Refused: ${msg.data?.code ?? 'error'}`);
  }
  dispatch(msg);
}

function dispatch(event) {
  const prev = state;
  state = reduce(state, event);
  if (state === prev) return;
  // An error about a square means nothing once the game around it has moved on.
  if (state.phase !== prev.phase && state.phase !== 'idle') ui.clearError();
  narrate(prev, state);
  paint();
}

// narrate tells screen-reader users what sighted players see change.
function narrate(prev, next) {
  if (next.gameId && next.gameId !== prev.gameId) {
    ui.announce(`New game. You are ${next.team.toUpperCase()}.`);
  }
  if (next.phase === 'waiting' && prev.phase !== 'waiting') ui.announce('Waiting for an opponent.');
  if (next.phase === 'playing' && prev.phase !== 'playing') {
    ui.announce(next.team === turn(next) ? 'Opponent found. Your turn.' : `Opponent found. ${turn(next).toUpperCase()} moves first.`);
  }
  if (next.move > prev.move && next.last) {
    const { x, y, team } = next.last;
    if (Number.isInteger(x) && Number.isInteger(y) && (team === 'x' || team === 'o')) {
      ui.announce(`${team.toUpperCase()} played ${cellName(x, y)}.`);
    }
    if (next.phase === 'playing' && next.team === turn(next)) ui.announce('Your turn.');
  }
  if (next.phase === 'over' && prev.phase !== 'over') {
    // A win is announced when updateWinner names the line, right after.
    const r = result(next);
    if (r === 'draw') ui.announce("It's a draw.");
    if (r === 'abandoned') ui.announce('Your opponent left the game.');
    if (canvas === document.activeElement) focusPlayAgain = true;
  }
  if (next.winner && !prev.winner) {
    const how = describeLine(next.line);
    const mine = next.winner === next.team;
    ui.announce(`${mine ? 'You won' : 'You lost'}${how ? `: ${next.winner.toUpperCase()} took ${how}` : ''}.`);
  }
}

function paint() {
  const playable = state.phase === 'playing' && state.connected && state.team === turn(state);
  const hover = input.hover();
  const cursor = input.cursor();
  board.render({
    grid: state.grid,
    line: state.line,
    cursor,
    hover,
    ghost: hover && canPlay(state, hover.x, hover.y) ? state.team : null,
  });
  canvas.dataset.playable = String(playable);

  const [status] = statusLine(state);
  const where = cursor ? ` Cursor on ${cellName(cursor.x, cursor.y)}.` : '';
  const sentence = status.replace(/[.!…]+$/, '');
  canvas.setAttribute('aria-label', `Tic-tac-toe board. ${sentence}. ${describeGrid(state.grid)}${where}`);

  ui.render(state);
  if (focusPlayAgain) {
    focusPlayAgain = false;
    ui.focusPlayAgain();
  }
  document.title = playable ? 'Your turn · tictac' : 'tictac';
}

paint();
// Quick match on arrival: the join waits in the socket's queue until it opens.
join();
socket.connect();
