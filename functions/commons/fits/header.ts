/**
 * FITS headers (FITS Standard 4.0, section 4): 2880-byte blocks of 36 cards of 80 ASCII characters,
 * ending with the END card. A card with "= " in columns 9-10 holds a value: a quoted string (a quote
 * inside written twice), a logical T or F, an integer, a real (exponent E or D), or a complex pair,
 * optionally followed by "/ comment". Other cards (COMMENT, HISTORY, blank) hold no value.
 */

export const BLOCK_BYTES = 2880;
export const CARD_BYTES = 80;
export const CARDS_PER_BLOCK = BLOCK_BYTES / CARD_BYTES;

/** An integer written as one is kept exact (a bigint): BZERO 2^63 and NAXISn past 2^53 must be seen as written. */
export type CardValue = string | boolean | bigint | number;

const INTEGER = /^[+-]?\d+$/;
const REAL = /^[+-]?(\d+\.?\d*|\.\d+)([ED][+-]?\d+)?$/i;

/** The value of a card's value field (columns 11-80); undefined when it is empty or not understood. */
export function parseValue(field: string): CardValue | undefined {
  const text = field.trimStart();
  if (text.startsWith("'")) {
    let out = '';
    for (let i = 1; i < text.length; i++) {
      if (text[i] !== "'") {
        out += text[i];
      } else if (text[i + 1] === "'") {
        out += "'";
        i++;
      } else {
        // Trailing spaces of a string are not significant; leading ones are (Standard 4.2.1.1).
        return out.trimEnd();
      }
    }
    return undefined;
  }
  const slash = text.indexOf('/');
  const value = (slash < 0 ? text : text.slice(0, slash)).trim();
  if (value === 'T') return true;
  if (value === 'F') return false;
  if (INTEGER.test(value)) return BigInt(value);
  if (REAL.test(value)) return Number(value.replace(/[dD]/, 'E'));
  return undefined;
}

/** A value as a header would write it, for messages. */
export function showValue(value: CardValue | undefined): string {
  if (value === undefined) return '(none)';
  if (typeof value === 'string') return `'${value}'`;
  if (typeof value === 'boolean') return value ? 'T' : 'F';
  return String(value);
}

/** The valued cards of one header, by keyword; the first card of a repeated keyword wins. */
export class FitsHeader {
  private readonly values = new Map<string, CardValue>();

  constructor(cards: string[]) {
    for (const card of cards) {
      if (card.slice(8, 10) !== '= ') continue;
      const keyword = card.slice(0, 8).trimEnd();
      if (this.values.has(keyword)) continue;
      const value = parseValue(card.slice(10));
      if (value !== undefined) this.values.set(keyword, value);
    }
  }

  has(keyword: string): boolean {
    return this.values.has(keyword);
  }

  get(keyword: string): CardValue | undefined {
    return this.values.get(keyword);
  }

  string(keyword: string): string | undefined {
    const value = this.values.get(keyword);
    return typeof value === 'string' ? value : undefined;
  }

  logical(keyword: string): boolean | undefined {
    const value = this.values.get(keyword);
    return typeof value === 'boolean' ? value : undefined;
  }

  /** A number written as an integer or a real (BSCALE = 1 and BSCALE = 1.0 alike). */
  number(keyword: string): number | undefined {
    const value = this.values.get(keyword);
    if (typeof value === 'bigint') return Number(value);
    return typeof value === 'number' ? value : undefined;
  }

  /** Whether the keyword's value is exactly `target` (an integer compared as written, a real as a double). */
  equals(keyword: string, target: bigint): boolean {
    const value = this.values.get(keyword);
    if (typeof value === 'bigint') return value === target;
    return typeof value === 'number' && value === Number(target);
  }
}

const LATIN1 = new TextDecoder('latin1');

/** The 80-character cards of header bytes, as written (bytes past ASCII are kept as single characters). */
export function cardsOf(bytes: Uint8Array): string[] {
  const text = LATIN1.decode(bytes);
  const cards: string[] = [];
  for (let at = 0; at + CARD_BYTES <= text.length; at += CARD_BYTES) cards.push(text.slice(at, at + CARD_BYTES));
  return cards;
}

/** The END card: keyword END, the rest blank (Standard 4.4.1.1 item 7). */
export const isEndCard = (card: string) => card.startsWith('END     ');
