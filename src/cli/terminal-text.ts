/**
 * What the CLI prints of text it did not write (cards, a node's error messages) goes through here first. A card
 * stored before PROTOCOL.md 1.1 may hold control characters, and a node may say anything: printed raw, a carriage
 * return or an escape sequence would redraw the line, and a bidi override would reorder what the terminal shows,
 * so one agent's id could appear beside another's endpoint.
 */

/**
 * C0, DEL and C1 controls; the line and paragraph separators; and the bidi marks, embeddings, overrides and isolates
 * (U+061C, U+200E-200F, U+202A-202E, U+2066-2069), which change the order of what follows them on screen.
 */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** The same less C0, which JSON.stringify escapes in strings (and which, outside them, is its own indentation). */
const UNSAFE_IN_JSON = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Record<string, string> = { '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/** Text for one line of a terminal: every unsafe character shown as an escape (\r, \x1b, \u202e). */
export function terminalText(text: string): string {
  return text.replace(UNSAFE, (ch) => {
    const named = NAMED[ch];
    if (named) return named;
    const code = ch.charCodeAt(0);
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/**
 * JSON for a terminal. JSON.stringify escapes C0 controls only; DEL, C1 (U+009B is a CSI to some terminals), the
 * separators and the bidi controls pass raw. Outside strings JSON text is plain ASCII, so each of them stands inside
 * a string, where \uXXXX is the same character: the output parses to the same value.
 */
export function terminalJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent).replace(UNSAFE_IN_JSON, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
