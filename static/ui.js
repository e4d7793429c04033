// Everything on the game screen around the board: mode and status lines,
// team or "Watching" badge, spectator count, away countdown, invite link,
// the action buttons, error toast, reconnect banner and the screen-reader
// announcer. Server text only ever reaches the page through textContent.

import { result, turn, canRematch, isSeated } from './state.js';

const $ = (id) => document.getElementById(id);
const upper = (team) => String(team).toUpperCase();
const LEVEL_NAMES = { easy: 'easy', hard: 'hard' };

/** modeLine names the kind of game: "Quick match", "vs Computer (hard)". */
export function modeLine(state) {
  switch (state.mode) {
    case 'quick': return 'Quick match';
    case 'friend': return 'Friend game';
    case 'bot': return state.level ? `vs Computer (${LEVEL_NAMES[state.level]})` : 'vs Computer';
    default: return state.intent?.kind === 'watch' ? 'Live game' : '';
  }
}

const JOINING = {
  quick: 'Finding an opponent…',
  friend: 'Creating your game…',
  bot: 'Starting your game…',
  invite: "Joining your friend's game…",
  watch: 'Loading the game…',
  rematch: 'Starting the rematch…',
};

/** statusLine turns the state into the sentence shown above the board and a tone for its colour. */
export function statusLine(state) {
  if (!state.everConnected && !state.connected) return ['Connecting…', ''];
  const bot = state.mode === 'bot';
  switch (state.phase) {
    case 'home':
      return ['', ''];
    case 'joining':
      if (!state.connected) return ['Waiting for the connection…', ''];
      return [JOINING[state.intent?.kind] ?? 'Finding a game…', ''];
    case 'waiting':
      if (state.intent?.kind === 'rematch') return [JOINING.rematch, ''];
      if (state.mode === 'bot') return [JOINING.bot, ''];
      return [state.mode === 'friend' ? 'Waiting for your friend…' : 'Waiting for an opponent…', ''];
    case 'playing':
      // Our seat is kept while we are away; moves wait until we are back.
      if (!state.connected && isSeated(state)) return ['Connection lost — reconnecting…', 'bad'];
      if (!isSeated(state)) return [`${upper(turn(state))} to move`, ''];
      // Not our turn any more, not the opponent's yet: the server has not
      // shown the move on the board.
      if (state.pending.length) return ['Sending your move…', ''];
      if (state.team === turn(state)) return ['Your turn', 'good'];
      return [bot ? 'Computer is thinking…' : "Opponent's turn", ''];
    case 'over':
      return resultLine(state);
    default:
      return ['', ''];
  }
}

// resultLine words an ending from this tab's side; spectators get names.
function resultLine(state) {
  const r = result(state);
  if (!r) return ['Game over', ''];
  const bot = state.mode === 'bot';
  const other = (t) => (t === 'x' ? 'o' : 'x');
  if (!isSeated(state)) {
    if (r.how === 'lost') return ['Lost track of this game', ''];
    const w = r.winner ? upper(r.winner) : '';
    const l = r.winner ? upper(other(r.winner)) : '';
    switch (r.how) {
      case 'line': return [w ? `${w} wins` : 'Game over', 'win'];
      case 'draw': return ["It's a draw", ''];
      case 'forfeit': return [w ? `${l} left — ${w} wins` : 'A player left', ''];
      case 'resign': return [w ? `${l} resigned — ${w} wins` : 'A player resigned', ''];
      default: return ['Game abandoned', ''];
    }
  }
  if (r.how === 'lost') return ["This game couldn't be resumed", 'bad'];
  const won = r.outcome === 'won';
  switch (r.how) {
    case 'line': return won ? ['You won!', 'win'] : [bot ? 'The computer won' : 'You lost', 'bad'];
    case 'draw': return ["It's a draw", ''];
    case 'forfeit':
      return won ? ['Opponent left — you win', 'win'] : ['You were away too long — you lose', 'bad'];
    case 'resign':
      return won ? ['Opponent resigned — you win', 'win'] : ['You resigned', 'bad'];
    default:
      return ['Your opponent left', ''];
  }
}

/** awayLine is the countdown sentence while a player is disconnected, or "". */
export function awayLine(state, now) {
  if (state.phase !== 'playing') return '';
  // Our own connection dropped: the server keeps our seat for its grace
  // period (its session said how long), then we forfeit.
  if (!state.connected && isSeated(state)) {
    if (!state.keptUntil) return 'Your game is kept for a short while — after that, you forfeit';
    const secs = Math.max(0, Math.ceil((state.keptUntil - now) / 1000));
    return secs > 0
      ? `Your game is kept for ${secs} s more — after that, you forfeit`
      : 'You may have forfeited: your game was kept only so long';
  }
  if (!state.away) return '';
  const secs = Math.max(0, Math.ceil((state.away.deadline - now) / 1000));
  if (isSeated(state)) {
    return secs > 0
      ? `Opponent disconnected — they forfeit in ${secs} s`
      : 'Opponent disconnected — they forfeit any moment now';
  }
  const who = upper(state.away.team);
  return secs > 0 ? `${who} disconnected — forfeits in ${secs} s` : `${who} disconnected — forfeits any moment now`;
}

/** inviteURL is the link a friend opens to join, on this very server. */
export function inviteURL(origin, invite) {
  return `${origin}/g/${encodeURIComponent(invite)}`;
}

/**
 * createUI binds the game screen and returns setters for main.js.
 * Handlers: onRematch, onNewGame, onResign, onCancel, onLeave.
 */
export function createUI({ onRematch, onNewGame, onResign, onCancel, onLeave }) {
  const el = {
    mode: $('game-mode'),
    spectators: $('spectators'),
    status: $('status'),
    team: $('team'),
    teamMark: $('team-mark'),
    watching: $('watching'),
    away: $('away'),
    invite: $('invite'),
    inviteLink: $('invite-link'),
    copy: $('copy-invite'),
    copyStatus: $('copy-status'),
    help: $('board-help'),
    board: $('board'),
    banner: $('banner'),
    bannerText: $('banner-text'),
    toast: $('toast'),
    rematchStatus: $('rematch-status'),
    rematch: $('rematch'),
    newGame: $('new-game'),
    resign: $('resign'),
    confirm: $('resign-confirm'),
    resignYes: $('resign-yes'),
    resignNo: $('resign-no'),
    cancel: $('cancel'),
    leave: $('leave'),
    announcer: $('announcer'),
  };
  const section = $('game');
  let toastTimer = 0;
  let announceTimer = 0;
  let copyTimer = 0;
  let confirming = false;
  let last = null;

  el.rematch.addEventListener('click', () => {
    if (el.rematch.getAttribute('aria-disabled') !== 'true') onRematch();
  });
  el.newGame.addEventListener('click', () => onNewGame());
  el.cancel.addEventListener('click', () => onCancel());
  el.leave.addEventListener('click', () => onLeave());
  // Resigning ends the game for good, so it takes a second, deliberate press.
  el.resign.addEventListener('click', () => {
    confirming = true;
    render(last);
    el.resignNo.focus({ preventScroll: true });
  });
  el.resignNo.addEventListener('click', () => {
    confirming = false;
    render(last);
    el.resign.focus({ preventScroll: true });
  });
  el.resignYes.addEventListener('click', () => {
    confirming = false;
    onResign();
    render(last);
  });
  el.copy.addEventListener('click', copyInvite);

  function render(state, now = Date.now()) {
    if (!state) return;
    last = state;
    // A button that hides while focused drops focus to <body>, which strands
    // keyboard and screen-reader users: hand focus to what replaced it.
    const focused = document.activeElement;
    const hadFocus = focused && focused !== el.board && section.contains(focused);
    const seated = isSeated(state);
    const [text, tone] = statusLine(state);
    setText(el.status, text);
    el.status.dataset.tone = tone;
    setText(el.mode, modeLine(state));

    el.team.hidden = !seated || state.phase === 'joining';
    setText(el.teamMark, seated ? upper(state.team) : '');
    el.teamMark.dataset.team = seated ? state.team : '';
    el.watching.hidden = state.team !== 'spectator';

    const n = state.spectators;
    el.spectators.hidden = !(n > 0);
    setText(el.spectators, n > 0 ? `${n} watching` : '');

    const away = awayLine(state, now);
    el.away.hidden = !away;
    setText(el.away, away);

    const invite = state.phase === 'waiting' && state.invite ? inviteURL(location.origin, state.invite) : '';
    el.invite.hidden = !invite;
    if (el.inviteLink.textContent !== invite) {
      // The code is kept in one piece: a link broken inside it is hard to read out.
      const cut = invite.lastIndexOf('/') + 1;
      const head = document.createElement('span');
      head.textContent = invite.slice(0, cut);
      const code = document.createElement('span');
      code.className = 'invite-code';
      code.textContent = invite.slice(cut);
      el.inviteLink.replaceChildren(head, code);
      setText(el.copyStatus, state.renewed ? 'The connection dropped, so this is a new link: the old one no longer works.' : '');
    }
    el.help.hidden = !(state.phase === 'playing' && seated);

    if (state.phase !== 'playing' || !seated) confirming = false;
    const rematchable = canRematch(state);
    const me = seated ? state.team : null;
    const them = me === 'x' ? 'o' : 'x';
    const offered = rematchable && state.rematch[me];
    const asked = rematchable && state.rematch[them];
    el.rematch.hidden = !rematchable;
    // aria-disabled rather than disabled: a disabled button loses keyboard focus.
    el.rematch.setAttribute('aria-disabled', String(Boolean(offered)));
    setText(el.rematch, offered ? 'Rematch offered…' : asked ? 'Accept rematch' : 'Rematch');
    let note = '';
    // Our own offer is shown by the button itself ("Rematch offered…").
    if (offered && !asked && state.mode === 'bot') note = 'Starting the rematch…';
    if (asked && !offered) note = 'Opponent wants a rematch';
    if (state.opponentLeft && state.phase === 'over' && seated) note = 'Your opponent left.';
    el.rematchStatus.hidden = !note;
    setText(el.rematchStatus, note);

    el.newGame.hidden = !(state.phase === 'over' && seated);
    el.resign.hidden = !(state.phase === 'playing' && seated) || confirming;
    el.confirm.hidden = !(state.phase === 'playing' && seated) || !confirming;
    el.cancel.hidden = !(state.phase === 'joining' || (state.phase === 'waiting' && seated));
    el.leave.hidden = state.team !== 'spectator';
    setText(el.leave, state.phase === 'over' ? 'Back to home' : 'Leave');
    if (hadFocus && !section.hidden && (focused.closest('[hidden]') || focused.disabled)) focusAction();
  }

  /** focusAction moves focus to what comes next: the board while a game is
   *  played, else the first action on offer (or the board). Resign is never
   *  where focus lands by itself: one Enter too many would offer to give up. */
  function focusAction() {
    const order = last?.phase === 'playing' ? [] : [el.rematch, el.newGame, el.leave, el.cancel];
    const target = order.find((b) => !b.hidden) ?? el.board;
    target.focus({ preventScroll: true });
  }

  async function copyInvite() {
    const text = el.inviteLink.textContent;
    if (!text) return;
    let copied = false;
    try {
      // Only in secure contexts (https, localhost); plain http on a LAN has none.
      await navigator.clipboard.writeText(text);
      copied = true;
    } catch {
      copied = false;
    }
    if (!copied) {
      selectLink();
      try {
        copied = document.execCommand('copy');
      } catch {
        copied = false;
      }
    }
    setText(el.copyStatus, copied ? 'Link copied.' : 'Link selected: copy it with Ctrl+C, or long-press to copy.');
    el.copy.textContent = copied ? 'Copied' : 'Copy';
    clearTimeout(copyTimer);
    copyTimer = setTimeout(() => { el.copy.textContent = 'Copy'; }, 2500);
  }

  function selectLink() {
    const sel = getSelection();
    sel.removeAllRanges();
    const range = document.createRange();
    range.selectNodeContents(el.inviteLink);
    sel.addRange(range);
  }

  function setConnection(connected, everConnected) {
    el.banner.hidden = connected;
    setText(el.bannerText, everConnected ? 'Reconnecting…' : 'Connecting to the server…');
  }

  function clearError() {
    clearTimeout(toastTimer);
    el.toast.hidden = true;
  }

  function showError(message) {
    el.toast.textContent = message;
    el.toast.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { el.toast.hidden = true; }, 3500);
  }

  // Re-setting the same text is not announced, so clear first and write on
  // the next tick; several messages in one turn are joined, not lost.
  let pending = [];
  function announce(text) {
    if (!text) return;
    pending.push(text);
    clearTimeout(announceTimer);
    announceTimer = setTimeout(() => {
      el.announcer.textContent = '';
      const msg = pending.join(' ');
      pending = [];
      setTimeout(() => { el.announcer.textContent = msg; }, 50);
    }, 0);
  }

  return { render, setConnection, showError, clearError, announce, focusAction };
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}
