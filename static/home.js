// The home screen: the ways to start a game, and a notice when a link or a
// join did not work out.

const $ = (id) => document.getElementById(id);

/**
 * createHome({onMode}) binds the mode buttons; onMode receives
 * {kind: "quick"} | {kind: "friend"} | {kind: "bot", level: "easy"|"hard"}.
 * Returns {render(state), focus()}.
 */
export function createHome({ onMode }) {
  const notice = $('home-notice');
  const first = $('mode-quick');

  first.addEventListener('click', () => onMode({ kind: 'quick' }));
  $('mode-friend').addEventListener('click', () => onMode({ kind: 'friend' }));
  $('mode-bot-easy').addEventListener('click', () => onMode({ kind: 'bot', level: 'easy' }));
  $('mode-bot-hard').addEventListener('click', () => onMode({ kind: 'bot', level: 'hard' }));

  function render(state) {
    notice.hidden = !state.notice;
    notice.textContent = state.notice ?? '';
  }

  // Coming back from a game with the keyboard, land on the first choice.
  function focus() {
    first.focus({ preventScroll: true });
  }

  return { render, focus };
}
