// The game as this tab sees it, rebuilt only from protocol messages and a few
// local events, so that every screen is a function of one value.

/**
 * Phases:
 *   joining  a joinGame is sent or queued, no answer yet
 *   waiting  in a game, no opponent yet
 *   playing  in a game that is in progress
 *   over     the game ended (see status, or lostConnection)
 *   idle     the server refused to put us in a game; offer to try again
 */
export function initialState() {
  return {
    connected: false,
    everConnected: false,
    phase: 'joining',
    gameId: null,
    team: null,
    status: null,
    grid: emptyGrid(),
    move: 0,
    last: null,
    winner: undefined, // undefined: not told yet; null: nobody won
    line: null,
    lostConnection: false,
    error: null,
  };
}

function emptyGrid() {
  return [[null, null, null], [null, null, null], [null, null, null]];
}

const ENDED = new Set(['finished', 'finished-draw', 'abandoned']);

/** reduce returns the state after one event; it never mutates its input. */
export function reduce(state, { action, data }) {
  switch (action) {
    case 'local:join':
      return { ...fresh(state), phase: 'joining' };

    case 'local:up':
      return { ...state, connected: true, everConnected: true };

    case 'local:down':
      // The server cannot resume games yet: a game in progress is gone, and
      // a wait in the queue has to start over on the next socket.
      if (state.phase === 'playing') {
        return { ...state, connected: false, phase: 'over', lostConnection: true };
      }
      if (state.phase === 'waiting' || state.phase === 'joining') {
        return { ...fresh(state), connected: false, phase: 'joining' };
      }
      return { ...state, connected: false };

    case 'joinGame':
      if (!data || typeof data.gameId !== 'string') return state;
      return {
        ...fresh(state),
        phase: 'waiting',
        gameId: data.gameId,
        team: data.team === 'o' ? 'o' : 'x',
      };

    case 'updateGameStatus': {
      if (!forThisGame(state, data)) return state;
      const status = data.status;
      let phase = state.phase;
      if (status === 'waiting') phase = 'waiting';
      else if (status === 'in-progress') phase = 'playing';
      else if (ENDED.has(status)) phase = 'over';
      return { ...state, status, phase };
    }

    case 'updateGrid':
      if (!forThisGame(state, data) || !validGrid(data.grid)) return state;
      if (typeof data.move !== 'number' || data.move < state.move) return state;
      return {
        ...state,
        grid: data.grid.map((col) => col.slice()),
        move: data.move,
        last: data.last && typeof data.last === 'object' ? data.last : null,
      };

    case 'updateWinner':
      if (!forThisGame(state, data)) return state;
      return {
        ...state,
        winner: data.winner === 'x' || data.winner === 'o' ? data.winner : null,
        line: validLine(data.line) ? data.line : null,
      };

    case 'error': {
      const error = {
        code: String(data?.code ?? 'error'),
        message: String(data?.message ?? ''),
      };
      // While joining, a refusal is about the join (we send nothing else then).
      if (state.phase === 'joining') return { ...state, phase: 'idle', error };
      return { ...state, error };
    }

    default:
      return state; // playerJoin, statsUpdate and pong change no game state here.
  }
}

function fresh(state) {
  const { connected, everConnected } = state;
  return { ...initialState(), connected, everConnected };
}

function forThisGame(state, data) {
  return Boolean(data) && state.gameId !== null && data.gameId === state.gameId;
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

/** turn is the team to move: X opens, then they alternate. */
export function turn(state) {
  return state.move % 2 === 0 ? 'x' : 'o';
}

/** canPlay tells whether a click on (x, y) should become a fillSquare. */
export function canPlay(state, x, y) {
  return state.connected && state.phase === 'playing' && state.team === turn(state) &&
    state.grid[x][y] === null;
}

/** result sums up an ended game from this player's side:
 *  "won", "lost", "draw", "abandoned", "disconnected" or null while it goes on. */
export function result(state) {
  if (state.phase !== 'over') return null;
  if (state.lostConnection) return 'disconnected';
  if (state.status === 'abandoned') return 'abandoned';
  if (state.status === 'finished-draw') return 'draw';
  // updateWinner follows the final status; until it lands, the last mover won.
  const winner = state.winner ?? state.last?.team;
  if (state.status === 'finished' && winner) return winner === state.team ? 'won' : 'lost';
  return null;
}
