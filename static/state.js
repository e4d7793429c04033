// The game as this tab sees it, rebuilt only from protocol messages and a few
// local events, so that every screen is a function of one value. Pure: no
// clocks, no DOM; times arrive inside events.

/**
 * Phases:
 *   home     no game: the home screen (modes, live games)
 *   joining  a joinGame or spectate is sent or queued, no answer yet
 *   waiting  in a game, no opponent yet
 *   playing  in a game in progress (as a player or a spectator)
 *   over     the game ended
 */
export function initialState() {
  return {
    connected: false,
    everConnected: false,
    grace: null, // ms the server keeps a dropped player's seat (its session says)
    keptUntil: null, // while our connection is down mid-game: when our seat goes, by our clock
    phase: 'home',
    intent: null, // what the pending join asked for: {kind, level?, invite?, gameId?}
    leftGameId: null, // the game we walked away from: late news about it is ignored
    notice: null, // a sentence for the home screen, e.g. a dead invite link
    error: null,
    pending: [], // our moves not acknowledged yet: {moveId, gameId, x, y, team, at}
    ...emptyGame(),
  };
}

function emptyGame() {
  return {
    gameId: null,
    team: null, // "x", "o" or "spectator"
    mode: null, // "quick", "friend" or "bot"
    level: null, // "easy" or "hard" against the bot
    opponent: null, // "human" or "bot"
    status: null,
    grid: emptyGrid(),
    move: 0,
    last: null,
    winner: undefined, // undefined: not told yet; null: nobody won
    line: null,
    reason: null, // "line", "draw", "forfeit" or "resign" once over
    invite: null,
    away: null, // {team, deadline}: a player whose socket dropped, and when they forfeit
    spectators: 0,
    rematch: { x: false, o: false },
    lost: false, // the game vanished while we were disconnected (the server never gave it back)
    renewed: false, // a friend game made again after a reconnect: the old link is dead
    opponentLeft: false, // the opponent left the ended game: no rematch will come
  };
}

function emptyGrid() {
  return [[null, null, null], [null, null, null], [null, null, null]];
}

const ENDED = new Set(['finished', 'finished-draw', 'abandoned']);
const MODES = new Set(['quick', 'friend', 'bot']);
const LEVELS = new Set(['easy', 'hard']);
const REASONS = new Set(['line', 'draw', 'forfeit', 'resign']);
// Refusals of a fillSquare: the move we were holding will never be applied.
const MOVE_REFUSED = new Set(['not_your_turn', 'occupied', 'off_board', 'game_over', 'not_started', 'not_in_game']);
// What a refused join means, in words for the home screen.
const JOIN_NOTICES = {
  invite_not_found: 'That invite link has expired or was already used. Start a new game below.',
  not_spectating: 'That game is no longer available to watch.',
};

function phaseOf(status) {
  if (status === 'waiting') return 'waiting';
  if (status === 'in-progress') return 'playing';
  if (ENDED.has(status)) return 'over';
  return null;
}

const isPlayer = (team) => team === 'x' || team === 'o';
const isMark = isPlayer;

/** reduce returns the state after one event; it never mutates its input. */
export function reduce(state, { action, data }) {
  switch (action) {
    case 'local:up':
      return { ...state, connected: true, everConnected: true, keptUntil: null };

    case 'local:down': {
      // The server keeps our seat for a grace period and sends `state` when we
      // are back, so the game view stays as it is, marked as not live. The
      // server's count starts when it sees the socket close, about now.
      // data: {now}
      const seated = state.phase === 'playing' && isPlayer(state.team);
      const keptUntil = seated && state.grace && Number.isFinite(data?.now) ? data.now + state.grace : null;
      return { ...state, connected: false, keptUntil: state.connected ? keptUntil : state.keptUntil };
    }

    case 'session':
      return Number.isInteger(data?.grace) && data.grace > 0 ? { ...state, grace: data.grace } : state;

    case 'local:join':
      // data: {kind: "quick"|"friend"|"bot"|"invite"|"watch", level?, invite?, gameId?}
      return {
        ...state,
        ...emptyGame(),
        phase: 'joining',
        intent: { ...data },
        leftGameId: state.gameId ?? state.leftGameId,
        notice: null,
        error: null,
        pending: [],
        mode: data.kind === 'bot' || data.kind === 'friend' || data.kind === 'quick' ? data.kind
          : data.kind === 'invite' ? 'friend' : null,
        level: data.kind === 'bot' && LEVELS.has(data.level) ? data.level : null,
      };

    case 'local:home':
      return {
        ...state,
        ...emptyGame(),
        phase: 'home',
        intent: null,
        // A watch or rematch we gave up on may still answer with its game id.
        leftGameId: state.gameId ?? state.intent?.gameId ?? state.leftGameId,
        notice: typeof data?.notice === 'string' ? data.notice : null,
        error: null,
        pending: [],
      };

    case 'local:lost':
      // main.js asked for the game after reconnecting and heard nothing back.
      if (state.phase !== 'waiting' && state.phase !== 'playing') return state;
      return { ...state, phase: 'over', lost: true, away: null, invite: null, pending: [] };

    case 'local:move': {
      // data: {moveId, x, y, at}: a fillSquare we just sent.
      if (!canPlay(state, data.x, data.y)) return state;
      const move = { moveId: data.moveId, gameId: state.gameId, x: data.x, y: data.y, team: state.team, at: data.at };
      return { ...state, pending: [...state.pending, move] };
    }

    case 'local:resent': {
      // data: {moveIds, at}: these were sent again just now.
      const ids = new Set(data.moveIds);
      return { ...state, pending: state.pending.map((m) => (ids.has(m.moveId) ? { ...m, at: data.at } : m)) };
    }

    case 'joinGame': {
      if (!data || typeof data.gameId !== 'string') return state;
      // Only a join we are waiting for counts. Others announce a resumed game
      // (its `state` follows) or answer a join we cancelled (main.js leaves it).
      if (state.phase !== 'joining') return state;
      const intent = state.intent ?? { kind: 'quick' };
      const opponent = data.opponent === 'bot' || data.opponent === 'human' ? data.opponent : state.opponent;
      let mode = state.mode;
      if (typeof data.invite === 'string') mode = 'friend';
      else if (opponent === 'bot') mode = 'bot';
      else if (!mode) mode = 'quick';
      return {
        ...state,
        phase: 'waiting',
        intent: intent.kind === 'rematch' ? intent : null,
        gameId: data.gameId,
        team: data.team === 'o' ? 'o' : 'x',
        status: 'waiting',
        mode,
        level: LEVELS.has(data.level) ? data.level : state.level,
        opponent,
        invite: typeof data.invite === 'string' ? data.invite : null,
        renewed: Boolean(intent.renewed) && typeof data.invite === 'string',
      };
    }

    case 'local:dropped':
      // data: {gameId}: a game we left as soon as it arrived.
      return { ...state, leftGameId: data.gameId };

    case 'state': {
      if (!data || typeof data.gameId !== 'string') return state;
      if (data.gameId === state.leftGameId && data.gameId !== state.gameId) return state;
      const phase = phaseOf(data.status);
      if (!phase) return state;
      const team = isPlayer(data.team) ? data.team : 'spectator';
      const away = validAway(data.opponentAway) && data.opponentAway.team !== team
        ? { team: data.opponentAway.team, deadline: localDeadline(data.opponentAway.deadline, data.now) } : null;
      const sameGame = data.gameId === state.gameId;
      const grid = validGrid(data.grid) ? data.grid.map((col) => col.slice()) : emptyGrid();
      return {
        ...state,
        ...emptyGame(),
        phase,
        intent: null,
        notice: null,
        gameId: data.gameId,
        team,
        mode: MODES.has(data.mode) ? data.mode : (sameGame ? state.mode : null),
        level: LEVELS.has(data.level) ? data.level : null,
        opponent: data.mode === 'bot' ? 'bot' : 'human',
        status: data.status,
        grid,
        move: Number.isInteger(data.move) ? data.move : 0,
        last: validLast(data.last) ? { ...data.last } : null,
        winner: phase === 'over' ? (isMark(data.winner) ? data.winner : null) : undefined,
        line: validLine(data.line) ? data.line : null,
        reason: REASONS.has(data.reason) ? data.reason : null,
        invite: typeof data.invite === 'string' && data.status === 'waiting' ? data.invite : null,
        away: phase === 'playing' ? away : null,
        spectators: count(data.spectators),
        rematch: {
          x: data.rematch?.x === true,
          o: data.rematch?.o === true,
        },
        // Moves of this game not on its grid yet are resent by main.js; others are moot.
        pending: phase === 'playing' ? unplayed(state.pending.filter((m) => m.gameId === data.gameId), grid) : [],
      };
    }

    case 'updateGameStatus': {
      if (!forThisGame(state, data)) return state;
      const phase = phaseOf(data.status) ?? state.phase;
      return {
        ...state,
        status: data.status,
        phase,
        intent: null,
        invite: phase === 'waiting' ? state.invite : null,
        away: phase === 'playing' ? state.away : null,
        pending: phase === 'playing' ? state.pending : [],
      };
    }

    case 'updateGrid': {
      if (!forThisGame(state, data) || !validGrid(data.grid)) return state;
      if (typeof data.move !== 'number' || data.move < state.move) return state;
      const last = validLast(data.last) ? { ...data.last } : null;
      // The grid shows our move: it landed even if its ack got lost (or the
      // server is too old to send acks), so stop holding it.
      const grid = data.grid.map((col) => col.slice());
      return { ...state, grid, move: data.move, last, pending: unplayed(state.pending, grid) };
    }

    case 'updateWinner':
      if (!forThisGame(state, data)) return state;
      return {
        ...state,
        winner: isMark(data.winner) ? data.winner : null,
        line: validLine(data.line) ? data.line : null,
        reason: REASONS.has(data.reason) ? data.reason : state.reason,
        away: null,
        pending: [],
      };

    case 'moveAck':
      if (!data || typeof data.moveId !== 'string') return state;
      if (!state.pending.some((m) => m.moveId === data.moveId)) return state;
      // The ack comes straight back, the grid that shows the move through the
      // game's room, usually just after. Until it does the move is still
      // ours to draw and the turn not the opponent's yet: dropping it here
      // would blank the mark and offer a turn that is not ours. (A grid that
      // never comes: the move is resent, and the server tells the game again.)
      if (Number.isInteger(data.move) && data.move > state.move) return state;
      return { ...state, pending: state.pending.filter((m) => m.moveId !== data.moveId) };

    case 'playerAway':
      if (!forThisGame(state, data) || !validAway(data) || data.team === state.team) return state;
      if (state.phase !== 'playing') return state;
      return { ...state, away: { team: data.team, deadline: localDeadline(data.deadline, data.now) } };

    case 'playerBack':
      if (!forThisGame(state, data) || !state.away) return state;
      return { ...state, away: null };

    case 'spectators':
      if (!forThisGame(state, data)) return state;
      return { ...state, spectators: count(data.count) };

    case 'playerLeft':
      if (!forThisGame(state, data) || !isPlayer(data.team) || data.team === state.team || state.phase !== 'over') return state;
      return { ...state, opponentLeft: true };

    case 'rematchOffer':
      if (!forThisGame(state, data) || !isPlayer(data.team)) return state;
      return { ...state, rematch: { ...state.rematch, [data.team]: true } };

    case 'rematch':
      // main.js sends joinGame {gameId: newGameId}; the reply and `state` follow.
      if (!forThisGame(state, data) || typeof data.newGameId !== 'string' || !isPlayer(state.team)) return state;
      return {
        ...state,
        ...emptyGame(),
        phase: 'joining',
        intent: { kind: 'rematch', gameId: data.newGameId },
        leftGameId: state.gameId,
        mode: state.mode,
        level: state.level,
        opponent: state.opponent,
        pending: [],
      };

    case 'error': {
      const error = {
        code: String(data?.code ?? 'error'),
        message: String(data?.message ?? ''),
      };
      // While joining, a refusal is about the join (we send nothing else then):
      // back to the home screen, saying why.
      if (state.phase === 'joining') {
        // The server knows why an invite failed (used, expired, your own link).
        const notice = (error.code === 'invite_not_found' && error.message) || JOIN_NOTICES[error.code] ||
          (state.intent?.kind === 'watch' ? 'That game is no longer available to watch.' : "Couldn't start a game. Please try again.");
        return { ...state, ...emptyGame(), phase: 'home', intent: null, notice, error, pending: [] };
      }
      const pending = MOVE_REFUSED.has(error.code) ? [] : state.pending;
      return { ...state, error, pending };
    }

    default:
      return state; // playerJoin, left, session, gameList, statsUpdate and pong change no game state here.
  }
}

// unplayed keeps the pending moves whose square is still empty on grid: a
// filled one was ours landing (only our turn lets us send one).
function unplayed(pending, grid) {
  const kept = pending.filter((m) => grid[m.x]?.[m.y] === null);
  return kept.length === pending.length ? pending : kept;
}

function forThisGame(state, data) {
  return Boolean(data) && state.gameId !== null && data.gameId === state.gameId;
}

function count(n) {
  return Number.isInteger(n) && n > 0 ? n : 0;
}

function validGrid(grid) {
  return Array.isArray(grid) && grid.length === 3 &&
    grid.every((col) => Array.isArray(col) && col.length === 3 &&
      col.every((m) => m === null || m === 'x' || m === 'o'));
}

function validLine(line) {
  return Array.isArray(line) && line.length === 3 &&
    line.every((p) => Array.isArray(p) && p.length === 2 &&
      p.every((n) => Number.isInteger(n) && n >= 0 && n < 3));
}

function validLast(last) {
  return Boolean(last) && typeof last === 'object' && isMark(last.team) &&
    Number.isInteger(last.x) && Number.isInteger(last.y) &&
    last.x >= 0 && last.x < 3 && last.y >= 0 && last.y < 3;
}

function validAway(away) {
  return Boolean(away) && typeof away === 'object' && isMark(away.team) && Number.isFinite(away.deadline);
}

/** turn is the team to move: X opens, then they alternate. */
export function turn(state) {
  return state.move % 2 === 0 ? 'x' : 'o';
}

/** isPlaying tells whether this tab holds a seat (not a spectator) in the current game. */
export function isSeated(state) {
  return isPlayer(state.team);
}

/** canPlay tells whether a click on (x, y) should become a fillSquare:
 *  our turn, a free square, and no earlier move of ours still unconfirmed. */
export function canPlay(state, x, y) {
  return state.connected && state.phase === 'playing' && isPlayer(state.team) &&
    state.team === turn(state) && state.pending.length === 0 &&
    Number.isInteger(x) && Number.isInteger(y) && x >= 0 && x < 3 && y >= 0 && y < 3 &&
    state.grid[x][y] === null;
}

/** canRematch tells whether a rematch may be offered: a game that ended on
 *  the board (not by forfeit or resignation), seen by one of its players. */
export function canRematch(state) {
  return state.phase === 'over' && isPlayer(state.team) && !state.opponentLeft &&
    (state.status === 'finished' || state.status === 'finished-draw') &&
    state.reason !== 'forfeit' && state.reason !== 'resign';
}

/**
 * result sums up an ended game: {how, winner, outcome} or null while it goes on.
 * how: "line", "draw", "forfeit", "resign", "abandoned" (an old server's
 * ending without a reason) or "lost" (not given back after a reconnect); outcome from this tab's side: "won", "lost",
 * "draw", or null for spectators and endings without a winner.
 */
export function result(state) {
  if (state.phase !== 'over') return null;
  if (state.lost) return { how: 'lost', winner: null, outcome: null };
  let how = state.reason;
  if (!how) {
    if (state.status === 'finished-draw') how = 'draw';
    else if (state.status === 'finished') how = 'line';
    else how = 'abandoned';
  }
  // updateWinner follows the final status; until it lands, the last mover won.
  let winner = state.winner ?? null;
  if (!winner && how === 'line') winner = state.last?.team ?? null;
  let outcome = null;
  if (how === 'draw') outcome = 'draw';
  else if (winner && isPlayer(state.team)) outcome = winner === state.team ? 'won' : 'lost';
  return { how, winner, outcome };
}

// localDeadline turns the server's deadline into this device's clock, using the
// server's "now" sent beside it, so a phone whose clock is off still counts
// down the right number of seconds.
function localDeadline(deadline, serverNow) {
  return Number.isFinite(serverNow) ? deadline - serverNow + Date.now() : deadline;
}
