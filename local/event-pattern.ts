/**
 * EventBridge's event-pattern matching, for the patterns a template's rules use: each field of the
 * pattern names the values the event's field may have (an array field matches if any element does),
 * and a nested object matches the event's nested object. Content filters (prefix, numeric,
 * anything-but, ...) are refused rather than guessed at, so a rule the local stack cannot match
 * the way EventBridge does stops the stack instead of routing differently.
 * Semantics: https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns.html
 */
export type EventPattern = { [field: string]: EventPattern | (string | number | boolean | null)[] };

export class EventPatternError extends Error {}

export function checkEventPattern(pattern: unknown, where = 'pattern'): EventPattern {
  if (pattern === null || typeof pattern !== 'object' || Array.isArray(pattern)) throw new EventPatternError(`${where}: not an object`);
  for (const [field, value] of Object.entries(pattern)) {
    if (Array.isArray(value)) {
      const filter = value.find((v) => v !== null && typeof v === 'object');
      if (filter) throw new EventPatternError(`${where}.${field}: the content filter ${JSON.stringify(filter)} is not matched locally`);
    } else checkEventPattern(value, `${where}.${field}`);
  }
  return pattern as EventPattern;
}

export function matchesEventPattern(pattern: EventPattern, event: unknown): boolean {
  if (event === null || typeof event !== 'object') return false;
  return Object.entries(pattern).every(([field, expected]) => {
    const value = (event as Record<string, unknown>)[field];
    if (!Array.isArray(expected)) return matchesEventPattern(expected, value);
    const values = Array.isArray(value) ? value : [value];
    return values.some((v) => v !== undefined && expected.includes(v as never));
  });
}
