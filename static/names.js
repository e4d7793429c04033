// Words for squares and boards, shared by the announcer and the canvas label
// so that both describe the game the same way.

const ROWS = ['top', 'middle', 'bottom'];
const COLS = ['left', 'center', 'right'];

/** cellName(x, y) names column x, row y: "top left", "center", "bottom right". */
export function cellName(x, y) {
  if (x === 1 && y === 1) return 'center';
  return `${ROWS[y]} ${COLS[x]}`;
}

/** markName turns a wire mark ("x", "o", null) into words. */
export function markName(mark) {
  return mark ? mark.toUpperCase() : 'empty';
}

/** describeGrid reads grid[x][y] row by row: "Top row: X, empty, O. …". */
export function describeGrid(grid) {
  const rows = [];
  for (let y = 0; y < 3; y++) {
    const cells = [0, 1, 2].map((x) => markName(grid[x][y]));
    rows.push(`${ROWS[y][0].toUpperCase()}${ROWS[y].slice(1)} row: ${cells.join(', ')}.`);
  }
  return rows.join(' ');
}

/** describeLine names a winning line given as three [x, y] squares. */
export function describeLine(line) {
  if (!Array.isArray(line) || line.length !== 3) return '';
  const [[x0, y0], [x1, y1], [x2, y2]] = line;
  if (y0 === y1 && y1 === y2) return `the ${ROWS[y0]} row`;
  if (x0 === x1 && x1 === x2) return `the ${COLS[x0]} column`;
  return 'a diagonal';
}
