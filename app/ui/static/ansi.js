// ANSI escape codes in a line of program output: colours become classes, the rest goes.
//
// SGR ("\x1b[...m") sets the colours and the weight: 30–37/90–97 and 40–47/100–107 (the 16
// colours), 38;5;n/48;5;n (256 colours) and 38;2;r;g;b/48;2;r;g;b (any colour), the last two
// shown as the nearest of the 16, so that every colour is a class of dashboard.css (no style
// attributes: the page's policy is style-src 'self') with a readable contrast. 1 bold,
// 2 faint, 3 italic, 4 underline, their 22–24 ends, 39/49 default colours, 0 reset. Every other
// escape sequence (cursor moves, titles, links) and control character is removed.

const CSI = 0x5b; // "[" after ESC
// An escape sequence; a lone ESC matches too.
const ESCAPE = new RegExp([
  String.raw`\x1b\[[0-?]*[ -/]*[@-~]`, // CSI: parameters, intermediates, final byte
  String.raw`\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?`, // OSC (a title, a link), ended by BEL or ST
  String.raw`\x1b[()*+#%][ -~]`, // a character set choice, "\x1b(B"
  String.raw`\x1b[@-Z\\-_]?`, // any other
].join("|"), "g");
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f]/g; // all but tab
const SGR = /^\x1b\[([0-9;:]*)m$/;

// xterm's 16 colours, to map 256-colour and RGB codes to the nearest.
const PALETTE = [
  [0, 0, 0], [205, 0, 0], [0, 205, 0], [205, 205, 0], [0, 0, 238], [205, 0, 205],
  [0, 205, 205], [229, 229, 229], [127, 127, 127], [255, 0, 0], [0, 255, 0], [255, 255, 0],
  [92, 92, 255], [255, 0, 255], [0, 255, 255], [255, 255, 255],
];
const CUBE = [0, 95, 135, 175, 215, 255];

/** True when `line` holds an escape sequence or a control character to handle. */
export function hasEscapes(line) {
  CONTROL.lastIndex = 0;
  return CONTROL.test(line);
}

/** The text of `line` without escape sequences and control characters (tab kept). */
export function stripAnsi(line) {
  return line.replace(ESCAPE, "").replace(CONTROL, "");
}

/** `line` as segments [{text, cls}] whose texts join to stripAnsi(line). */
export function parseAnsi(line) {
  const segments = [];
  const state = { fg: null, bg: null, bold: false, faint: false, italic: false, underline: false };
  let cls = "";
  let from = 0;
  const push = (end) => {
    const text = line.slice(from, end).replace(CONTROL, "");
    if (!text) return;
    const last = segments[segments.length - 1];
    if (last && last.cls === cls) last.text += text;
    else segments.push({ text, cls });
  };
  for (const match of line.matchAll(ESCAPE)) {
    push(match.index);
    from = match.index + match[0].length;
    const sgr = match[0].charCodeAt(1) === CSI ? SGR.exec(match[0]) : null;
    if (sgr) {
      applySgr(state, sgr[1]);
      cls = classesOf(state);
    }
  }
  push(line.length);
  return segments;
}

function applySgr(state, params) {
  const codes = params === "" ? [0] : params.split(/[;:]/).map((p) => (p === "" ? 0 : Number(p)));
  for (let i = 0; i < codes.length; i += 1) {
    const code = codes[i];
    if (code === 0) {
      Object.assign(state, { fg: null, bg: null, bold: false, faint: false, italic: false,
        underline: false });
    } else if (code === 1) state.bold = true;
    else if (code === 2) state.faint = true;
    else if (code === 3) state.italic = true;
    else if (code === 4) state.underline = true;
    else if (code === 22) state.bold = state.faint = false;
    else if (code === 23) state.italic = false;
    else if (code === 24) state.underline = false;
    else if (code >= 30 && code <= 37) state.fg = code - 30;
    else if (code >= 90 && code <= 97) state.fg = code - 90 + 8;
    else if (code === 39) state.fg = null;
    else if (code >= 40 && code <= 47) state.bg = code - 40;
    else if (code >= 100 && code <= 107) state.bg = code - 100 + 8;
    else if (code === 49) state.bg = null;
    else if (code === 38 || code === 48) {
      const [colour, used] = extendedColour(codes, i + 1);
      if (colour !== null) state[code === 38 ? "fg" : "bg"] = colour;
      i += used;
    }
  }
}

/** The colour index (0–15) of "5;n" or "2;r;g;b" at codes[at], and how many codes it used. */
function extendedColour(codes, at) {
  if (codes[at] === 5 && at + 1 < codes.length) {
    const n = codes[at + 1];
    if (n < 16) return [n, 2];
    return [nearest(n < 232 ? cubeColour(n - 16) : Array(3).fill(8 + 10 * (n - 232))), 2];
  }
  if (codes[at] === 2 && at + 3 < codes.length) {
    return [nearest(codes.slice(at + 1, at + 4)), 4];
  }
  return [null, codes.length - at]; // malformed: ignore the rest
}

function cubeColour(n) {
  return [CUBE[Math.floor(n / 36) % 6], CUBE[Math.floor(n / 6) % 6], CUBE[n % 6]];
}

function nearest(rgb) {
  let best = 0;
  let bestDistance = Infinity;
  PALETTE.forEach((colour, index) => {
    const distance = colour.reduce((sum, v, k) => sum + (v - rgb[k]) ** 2, 0);
    if (distance < bestDistance) [best, bestDistance] = [index, distance];
  });
  return best;
}

function classesOf(state) {
  const names = [];
  if (state.fg !== null) names.push(`ansi-fg-${state.fg}`);
  if (state.bg !== null) names.push(`ansi-bg-${state.bg}`);
  if (state.bold) names.push("ansi-bold");
  if (state.faint) names.push("ansi-faint");
  if (state.italic) names.push("ansi-italic");
  if (state.underline) names.push("ansi-underline");
  return names.join(" ");
}
