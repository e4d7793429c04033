// Wires the socket, the game state and the views together. Side effects
// (sending, announcing, focus, history) live here so the other modules stay simple.

import { liveURL, createSocket } from './socket.js';
import { initialState, reduce, canPlay, turn, result, isSeated } from './state.js';
import { createBoard } from './board.js';
import { createInput } from './input.js';
import { createStats } from './stats.js';
import { createUI, statusLine, awayLine } from './ui.js';
import { createHome } from './home.js';
import { createLobby } from './lobby.js';
import { createSession } from './session.js';
import { newMoveId, fillSquare, due } from './moves.js';
import { cellName, describeGrid, describeLine } from './names.js';

// After a reconnect we ask for our game back; silence for this long means it is gone.
const RESUME_WAIT = 6000;

const canvas = document.getElementById('board');
const homeSection = document.getElementById('home');
const lobbySection = document.getElementById('lobby');
const gameSection = document.getElementById('game');

let state = initialState();
// Per socket: the server has answered hello (until then nothing else may go
// out), and whether it is sending us the live games list.
let ready = false;
let listing = false;
let statsOn = true; // what the server does for this socket: on, until we pause them
// The game we asked for with sync/spectate after a reconnect, until its state arrives.
let resuming = null;
let resumeTimer = 0;
let announcedResult = null;
// A join on its way to the server, and joins we cancelled before their
// answer: those answers are left at once when they arrive.
let joinInFlight = false;
let unwantedJoins = 0;
let awayWarned = false;

const session = createSession();
const board = createBoard(canvas);
const stats = createStats(document.getElementById('stats'));
const home = createHome({ onMode: start });
const lobby = createLobby(document.getElementById('live-games'), document.getElementById('live-empty'), {
  onWatch: (gameId) => start({ kind: 'watch', gameId }),
});
const ui = createUI({ onRematch: rematch, onNewGame: newGame, onResign: resign, onCancel: cancel, onLeave: leave });
const input = createInput(canvas, { onPlay: play, onChange: paint });

const socket = createSocket({
  url: liveURL(location),
  greeting: session.hello,
  onMessage: receive,
  onUp() {
    const { everConnected } = state;
    ready = false;
    listing = false;
    statsOn = true;
    dispatch({ action: 'local:up' });
    ui.setConnection(true, true);
    stats.setStale(false);
    // The first connection is not news; coming back is.
    if (everConnected) ui.announce('Reconnected.');
  },
  onRetry() {
    // Only after a first failure: a page that connects at once never flashes the banner.
    ui.setConnection(false, state.everConnected);
  },
  onDown() {
    // The server cancels a waiting game whose socket closed; a join that was
    // answered on the old socket is not ours to leave any more.
    joinInFlight = false;
    unwantedJoins = 0;
    // Whatever was queued was meant for the old socket; what still matters
    // (the join, our game, unacknowledged moves) is asked again after hello.
    socket.clearQueue();
    ready = false;
    listing = false;
    statsOn = true;
    clearTimeout(resumeTimer);
    dispatch({ action: 'local:down', data: { now: Date.now() } });
    ui.setConnection(false, true);
    stats.setStale(true);
    const inGame = state.phase === 'playing' && isSeated(state);
    const kept = state.grace ? `${Math.round(state.grace / 1000)} seconds` : 'a short while';
    ui.announce(inGame ? `Connection lost. Reconnecting; your game is kept for ${kept}.` : 'Connection lost. Reconnecting.');
  },
});

// ---- what the player does ----

/** start asks for a game: intent is {kind: quick|friend|bot|invite|watch, level?, invite?, gameId?}. */
function start(intent) {
  dispatch({ action: 'local:join', data: intent });
  // Before hello is answered the join waits in the state, and afterHello sends it.
  if (ready) sendJoin(intent);
}

function sendJoin(intent) {
  socket.send(joinMessage(intent));
  // A spectate is answered by `state`, which leftGameId already screens.
  joinInFlight = intent.kind !== 'watch';
}

function joinMessage(intent) {
  switch (intent.kind) {
    case 'friend': return { action: 'joinGame', data: { mode: 'friend' } };
    case 'bot': return { action: 'joinGame', data: { mode: 'bot', level: intent.level } };
    case 'invite': return { action: 'joinGame', data: { invite: intent.invite } };
    case 'rematch': return { action: 'joinGame', data: { gameId: intent.gameId } };
    case 'watch': return { action: 'spectate', data: { gameId: intent.gameId } };
    default: return { action: 'joinGame', data: null };
  }
}

function play({ x, y }) {
  if (canPlay(state, x, y)) {
    dispatch({ action: 'local:move', data: { moveId: newMoveId(), x, y, at: Date.now() } });
    socket.send(fillSquare(state.pending[state.pending.length - 1]));
    return;
  }
  // Say why nothing happened instead of sending a move the server will refuse.
  if (state.phase !== 'playing' || !isSeated(state)) return;
  if (state.pending.length) {
    ui.showError('Your move is still on its way. One moment.');
  } else if (!state.connected) {
    ui.showError('Not connected. Moves can be played once the connection is back.');
  } else if (state.team !== turn(state)) {
    ui.showError(state.mode === 'bot' ? "It's the computer's turn." : "It's your opponent's turn.");
  } else if (state.grid[x][y]) {
    ui.showError('That square is taken.');
  }
}

function rematch() {
  if (state.phase === 'over' && state.gameId) socket.send({ action: 'rematch', data: { gameId: state.gameId } });
}

function resign() {
  if (state.phase === 'playing' && state.gameId) {
    socket.send({ action: 'leaveGame', data: { gameId: state.gameId } });
    ui.announce('Resigning.');
  }
}

// cancel gives up a join or a waiting game (the server cancels its invite).
function cancel() {
  if (state.gameId && state.phase === 'waiting') socket.send({ action: 'leaveGame', data: { gameId: state.gameId } });
  if (state.phase === 'joining' && state.intent?.kind === 'watch') return leave();
  if (state.phase === 'joining' && joinInFlight) unwantedJoins++;
  joinInFlight = false;
  goHome();
}

// leave stops watching.
function leave() {
  const gameId = state.gameId ?? (state.intent?.kind === 'watch' ? state.intent.gameId : null);
  if (gameId && state.phase !== 'over') socket.send({ action: 'leaveGame', data: { gameId } });
  goHome();
}

// newGame leaves an ended game for the home screen; the opponent hears it
// (no rematch will come).
function newGame() {
  if (state.phase === 'over' && isSeated(state) && state.gameId) socket.send({ action: 'leaveGame', data: { gameId: state.gameId } });
  goHome();
}

function goHome() {
  dispatch({ action: 'local:home' });
}

// ---- what the server says ----

function receive(msg) {
  const { action, data } = msg;
  switch (action) {
    case 'session':
      session.save(data?.token);
      dispatch(msg); // how long a dropped seat is kept
      afterHello();
      return;
    case 'statsUpdate':
      stats.update(data);
      return;
    case 'gameList':
      if (listing) lobby.render(data?.games);
      return;
    case 'pong':
      return;
    case 'error':
      // An error before any session is the answer to hello from a server
      // that does not know it: carry on without resume rather than hang.
      if (!ready) {
        afterHello();
        return;
      }
      if (state.phase === 'joining') joinInFlight = false;
      // While we wait for our game after a reconnect, the only thing we asked
      // is sync or spectate: a refusal means the game is gone.
      if (resuming) {
        resumeFailed();
        return;
      }
      if (showable(data?.code)) ui.showError(data?.message || `Refused: ${data?.code ?? 'error'}`);
      break;
    case 'gameCancelled':
      // The quick game we wait in went with a socket of ours that closed on
      // another replica after this page had taken the game up: wait again.
      if (data?.gameId === state.gameId && state.phase === 'waiting' && isSeated(state) && state.mode !== 'friend') {
        start({ kind: 'quick' });
      }
      return;
    case 'joinGame':
      if (state.phase === 'joining') {
        joinInFlight = false;
      } else if (unwantedJoins > 0 && typeof data?.gameId === 'string' && data.gameId !== state.gameId) {
        // The answer to a join we cancelled on its way: leave that game at once.
        unwantedJoins--;
        socket.send({ action: 'leaveGame', data: { gameId: data.gameId } });
        dispatch({ action: 'local:dropped', data: { gameId: data.gameId } });
        return;
      }
      break;
    case 'moveAck':
    case 'updateGrid':
    case 'updateGameStatus':
    case 'updateWinner':
      // Our view skipped a move (a frame lost between replicas, a sleepy
      // tab): the full state fills the gap.
      // An updateGrid or an ack names the move it makes, one beyond the grid
      // we show (an ack usually arrives before the grid of its move): further
      // on, we missed one.
      if (data?.gameId === state.gameId && Number.isInteger(data?.move) &&
          data.move > state.move + (action === 'updateGrid' || action === 'moveAck' ? 1 : 0)) {
        socket.send({ action: 'sync', data: { gameId: state.gameId } });
      }
      break;
    default:
      break;
  }
  dispatch(msg);

  if (action === 'state' && data?.gameId === state.gameId) {
    if (resuming === state.gameId) {
      resuming = null;
      clearTimeout(resumeTimer);
    }
    // Moves the server may not have got: same ids, so it applies each once.
    resend(state.pending);
  }
  if (action === 'rematch' && state.phase === 'joining' && state.intent?.kind === 'rematch') {
    socket.send(joinMessage(state.intent));
  }
}

// Errors the player needs to see; the others are answered by the page itself.
function showable(code) {
  if (code === 'already_playing' && state.phase !== 'joining') return false; // a resume beat our join
  return true;
}

// afterHello runs once per socket when the server knows who we are: it
// sends whatever this socket still owes the server.
function afterHello() {
  ready = true;
  socket.release();
  syncStats();
  if (state.phase === 'joining' && state.intent) {
    sendJoin(state.intent);
  } else if (state.phase === 'waiting' && isSeated(state) && state.mode !== 'friend') {
    // A quick game's wait dies with its socket (nobody was kept waiting on
    // it): queue again.
    start({ kind: 'quick' });
  } else if (state.gameId && state.phase !== 'home') {
    // A friend's game waits for us for the grace period, its link still
    // good, and comes back like a game in progress.
    // The server gives a resumed player its game unasked, but not a game that
    // ended meanwhile, nor one we only watch: ask for it by id.
    const watching = state.team === 'spectator';
    if (watching && state.phase === 'over') return syncListing();
    socket.send(watching
      ? { action: 'spectate', data: { gameId: state.gameId } }
      : { action: 'sync', data: { gameId: state.gameId } });
    if (state.phase !== 'over') {
      resuming = state.gameId;
      clearTimeout(resumeTimer);
      resumeTimer = setTimeout(() => {
        if (resuming === state.gameId) resumeFailed();
      }, RESUME_WAIT);
    }
  }
  syncListing();
}

// resumeFailed: the server did not give our game back (it ended while we
// were away, or it forgot us). Say so rather than show a board that is stuck.
function resumeFailed() {
  resuming = null;
  clearTimeout(resumeTimer);
  // An invite that expired while we were away: make a new one (the page
  // says the old link no longer works).
  if (state.phase === 'waiting' && state.mode === 'friend') return start({ kind: 'friend', renewed: true });
  dispatch({ action: 'local:lost' });
}

function resend(moves) {
  if (!ready || !moves.length) return;
  for (const m of moves) socket.send(fillSquare(m));
  dispatch({ action: 'local:resent', data: { moveIds: moves.map((m) => m.moveId), at: Date.now() } });
}

// A hidden tab asks for no live stats: nobody reads them, and every frame
// costs the server a system call. Shown again, it gets the values at once.
function syncStats() {
  const want = !document.hidden;
  if (!ready || want === statsOn) return;
  statsOn = want;
  socket.send({ action: want ? 'resumeStats' : 'pauseStats' });
}
document.addEventListener('visibilitychange', syncStats);

// The live games list streams only while the home screen shows it.
function syncListing() {
  const want = ready && state.phase === 'home';
  if (want === listing) return;
  listing = want;
  if (!ready) return;
  socket.send({ action: want ? 'listGames' : 'unlistGames' });
  if (!want) lobby.clear();
}

// ---- state changes ----

function dispatch(event) {
  const prev = state;
  state = reduce(state, event);
  if (state === prev) return;
  // An error about a square means nothing once the game around it has moved on.
  if (state.phase !== prev.phase) ui.clearError();
  syncListing();
  narrate(prev, state, event.action);
  // An invite link is good for one game: once it has been used (or refused),
  // a reload should resume, not try it again.
  if (location.pathname.startsWith('/g/') && state.phase !== 'joining') history.replaceState(null, '', '/');
  // Read before painting: a focused button inside a screen being hidden may
  // already have lost focus afterwards.
  const focused = document.activeElement;
  paint();
  // A new screen starts at its top, not at the old one's scroll position
  // (on a phone that can be anywhere down the home screen or the game).
  if ((prev.phase === 'home') !== (state.phase === 'home')) window.scrollTo(0, 0);
  moveFocus(prev, state, focused);
  rememberQueue(state);
}

// A quick game's wait dies with its socket, and a reload's new page starts
// at home: the tab notes that it waits for a quick match, so that a reload
// queues again, as a reconnect does (see afterHello). sessionStorage is the
// tab's own; no storage, no note.
const QUEUED = 'tictac.queued';

function rememberQueue(s) {
  try {
    if (s.phase === 'waiting' && isSeated(s) && s.mode !== 'friend') sessionStorage.setItem(QUEUED, '1');
    else if (s.phase !== 'joining') sessionStorage.removeItem(QUEUED);
  } catch {
    // Storage blocked: a reload lands at home, as before.
  }
}

function queuedBeforeReload() {
  try {
    return sessionStorage.getItem(QUEUED) === '1';
  } catch {
    return false;
  }
}

// narrate tells screen-reader users what sighted players see change.
function narrate(prev, next, action) {
  const newGame = next.gameId && next.gameId !== prev.gameId;
  const bot = next.mode === 'bot';
  const seated = isSeated(next);
  // A new notice, whether it sent us home (a refused join) or greets a page
  // opened on a bad invite link (home already).
  if (next.phase === 'home' && next.notice && next.notice !== prev.notice) ui.announce(next.notice);

  const resumed = action === 'state' && prev.phase !== 'joining' && prev.intent?.kind !== 'rematch';
  if (newGame && resumed) {
    ui.announce(seated ? `Back in your game. You are ${next.team.toUpperCase()}.` : 'Back to the game you were watching.');
  }
  if (next.phase === 'waiting' && prev.phase !== 'waiting' && !next.intent && !bot) {
    ui.announce(next.mode === 'friend'
      ? 'Game created. Copy the invite link and send it to your friend. Waiting for your friend.'
      : 'Waiting for an opponent.');
  }
  if (next.phase === 'playing' && (prev.phase !== 'playing' || newGame)) {
    const mover = turn(next).toUpperCase();
    if (!seated) {
      ui.announce(`Watching a ${bot ? 'game against the computer' : 'live game'}. ${describeGrid(next.grid)} ${mover} to move.`);
    } else {
      let intro = 'Opponent found.';
      if (bot) intro = `Playing the computer, ${next.level ?? ''} level.`;
      else if (prev.intent?.kind === 'rematch') intro = 'Rematch started.';
      // The friend who opened the link always joins as O.
      else if (next.mode === 'friend') intro = next.team === 'o' ? "You joined your friend's game." : 'Your friend joined.';
      const mine = next.team === turn(next);
      if (newGame && resumed) {
        // "Back in your game. You are X." was said above: only whose turn it is.
        ui.announce(mine ? 'Your turn.' : `${bot ? "The computer's" : "Your opponent's"} turn.`);
      } else {
        const go = mine ? 'Your turn.' : `${bot ? 'The computer' : mover} moves first.`;
        ui.announce(`${intro} You are ${next.team.toUpperCase()}. ${next.move === 0 ? go : (mine ? 'Your turn.' : '')}`.trim());
      }
    }
  }
  if (!newGame && next.move > prev.move && next.last) {
    const { x, y, team } = next.last;
    const who = bot && seated && team !== next.team ? 'The computer' : team.toUpperCase();
    ui.announce(`${who} played ${cellName(x, y)}.`);
    if (next.phase === 'playing' && seated && next.team === turn(next)) ui.announce('Your turn.');
  }

  if (next.away && !prev.away) {
    const secs = Math.max(0, Math.round((next.away.deadline - Date.now()) / 1000));
    ui.announce(seated
      ? `Your opponent disconnected. They forfeit in ${secs} seconds unless they come back.`
      : `${next.away.team.toUpperCase()} disconnected.`);
    awayWarned = false;
  }
  if (prev.away && !next.away && next.phase === 'playing' && next.gameId === prev.gameId) {
    ui.announce(seated ? 'Your opponent is back.' : `${prev.away.team.toUpperCase()} is back.`);
  }

  // The result, once per game, when it is complete: the status comes first
  // and the winner (with how it was won) right after.
  const r = result(next);
  const complete = r && (next.winner !== undefined || r.how === 'draw' || r.how === 'lost');
  if (complete && announcedResult !== next.gameId) {
    announcedResult = next.gameId;
    const text = statusLine(next)[0].replace(/[.!…]+$/, '');
    const how = r.how === 'line' ? describeLine(next.line) : '';
    ui.announce(`${text}${how && r.winner ? `: ${r.winner.toUpperCase()} took ${how}` : ''}.`);
  }

  if (seated && next.gameId === prev.gameId) {
    const me = next.team;
    const them = me === 'x' ? 'o' : 'x';
    if (next.rematch[them] && !prev.rematch[them] && !next.rematch[me]) {
      ui.announce('Your opponent wants a rematch. Choose Accept rematch to play again.');
    }
    if (next.rematch[me] && !prev.rematch[me] && !next.rematch[them] && !bot) {
      ui.announce('Rematch offered. Waiting for your opponent.');
    }
    if (next.opponentLeft && !prev.opponentLeft) ui.announce('Your opponent left.');
  }
  if (action === 'rematch' && next.phase === 'joining') ui.announce('Rematch accepted.');
}

// moveFocus keeps keyboard focus somewhere useful when whole screens swap.
// Focus that was nowhere in particular (a page just loaded) stays put, so
// nothing shows a focus ring nobody asked for.
function moveFocus(prev, next, a) {
  if (prev.phase !== 'home' && next.phase === 'home') {
    if (gameSection.contains(a)) home.focus();
    return;
  }
  if (prev.phase === 'home' && next.phase !== 'home') {
    if (homeSection.contains(a) || lobbySection.contains(a)) canvas.focus({ preventScroll: true });
    return;
  }
  // Play starts (an opponent or a friend came, a rematch began): the board is
  // what to act on now, not the button the wait left focus on.
  if (next.phase === 'playing' && (prev.phase === 'joining' || prev.phase === 'waiting') &&
      gameSection.contains(a) && a !== canvas) {
    canvas.focus({ preventScroll: true });
    return;
  }
  // A friend's game was just created from the board: the link is what to act on.
  if (next.invite && !prev.invite && a === canvas) document.getElementById('copy-invite').focus({ preventScroll: true });
  // The game ended under a keyboard player: offer what comes next.
  if (next.phase === 'over' && prev.phase !== 'over' && a === canvas) ui.focusAction();
}

function paint() {
  const seated = isSeated(state);
  const playable = state.phase === 'playing' && state.connected && seated && state.team === turn(state) && !state.pending.length;
  const onHome = state.phase === 'home';
  homeSection.hidden = !onHome;
  lobbySection.hidden = !onHome;
  gameSection.hidden = onHome;
  home.render(state);

  const hover = input.hover();
  const cursor = input.cursor();
  board.render({
    grid: state.grid,
    line: state.line,
    cursor,
    hover,
    ghost: hover && canPlay(state, hover.x, hover.y) ? state.team : null,
    pending: state.pending,
  });
  canvas.dataset.playable = String(playable);
  canvas.dataset.spectating = String(state.team === 'spectator');
  // Until a friend shows up the board is only a placeholder; the link matters more.
  gameSection.dataset.waitingFriend = String(state.phase === 'waiting' && Boolean(state.invite));

  const [status] = statusLine(state);
  const where = cursor ? ` Cursor on ${cellName(cursor.x, cursor.y)}.` : '';
  const sentence = status.replace(/[.!…]+$/, '');
  canvas.setAttribute('aria-label', `Tic-tac-toe board${seated ? '' : ', watching'}. ${sentence}. ${describeGrid(state.grid)}${where}`);

  ui.render(state);
  let title = 'tictac';
  if (playable) title = 'Your turn · tictac';
  else if (state.phase === 'waiting' && state.mode === 'friend') title = 'Waiting for your friend · tictac';
  document.title = title;
}

// One clock for the away countdown and for moves waiting on an ack.
setInterval(() => {
  const now = Date.now();
  if (state.away || (!state.connected && state.keptUntil)) {
    ui.render(state, now);
    if (!awayWarned && state.connected && isSeated(state) && state.away.deadline - now <= 10_000 && state.away.deadline > now) {
      awayWarned = true;
      ui.announce(awayLine(state, now).replace(' s', ' seconds') + '.');
    }
  }
  if (ready && state.pending.length) resend(due(state.pending, now));
}, 500);

// ---- start ----

// /g/<code> is an invite link: join that friend's game straight away.
// Anything else under /g/ is a link broken on its way (the server serves the
// page for all of them). Other paths start at home; a resumed game arrives
// by itself after hello.
if (location.pathname.startsWith('/g/')) {
  const invitePath = location.pathname.match(/^\/g\/([^/]+)\/?$/);
  let code = '';
  try {
    code = invitePath ? decodeURIComponent(invitePath[1]) : '';
  } catch {
    code = ''; // malformed escapes: treated as a bad link below
  }
  if (/^[a-z2-7]{4,64}$/i.test(code)) {
    start({ kind: 'invite', invite: code.toLowerCase() });
  } else {
    history.replaceState(null, '', '/');
    dispatch({ action: 'local:home', data: { notice: "That invite link isn't valid. Ask your friend for a new one, or start a game below." } });
  }
} else if (queuedBeforeReload()) {
  // Reloaded while waiting for a quick match: wait again. A game that paired
  // us meanwhile comes back after hello all the same, and beats this join.
  start({ kind: 'quick' });
}
paint();
socket.connect();
