/**
 * DynamoDB's write request units, by its item-size rule
 * (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html):
 * an item's size is the UTF-8 bytes of its attribute names plus the sizes of their values; a write
 * costs one unit per KB of it, rounded up, and the same again for each global secondary index that
 * projects the item (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html,
 * "Provisioned throughput considerations").
 */

const utf8 = (text: string) => Buffer.byteLength(text, 'utf8');

/** A number: 1 byte per two significant digits, plus 1 (leading and trailing zeros do not count). */
function numberBytes(value: number): number {
  const digits = Math.abs(value)
    .toExponential()
    .split('e')[0]
    .replace('.', '')
    .replace(/^0+|0+$/g, '');
  return Math.ceil(Math.max(digits.length, 1) / 2) + 1;
}

/** The size of one attribute value as DynamoDB stores it (a document client's plain value). */
export function valueBytes(value: unknown): number {
  if (value === null || typeof value === 'boolean') return 1;
  if (typeof value === 'string') return utf8(value);
  if (typeof value === 'number') return numberBytes(value);
  if (Array.isArray(value)) return 3 + value.reduce((sum: number, v) => sum + 1 + valueBytes(v), 0);
  if (typeof value === 'object') {
    // A map: 3 bytes, and per element 1 byte, its name and its value.
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    return 3 + entries.reduce((sum, [k, v]) => sum + 1 + utf8(k) + valueBytes(v), 0);
  }
  return 0;
}

/** An item's size: its attribute names and values (undefined ones are not stored). */
export function itemBytes(item: object): number {
  return Object.entries(item)
    .filter(([, v]) => v !== undefined)
    .reduce((sum, [k, v]) => sum + utf8(k) + valueBytes(v), 0);
}

/** Write request units of one write of an item of `bytes`, to the table and to each of `indexes` that project all of it. */
export const writeUnits = (bytes: number, indexes: number): number => Math.max(1, Math.ceil(bytes / 1024)) * (1 + indexes);
