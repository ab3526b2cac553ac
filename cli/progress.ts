/**
 * Progress on stderr, so stdout stays for results. On a terminal one line is rewritten in place;
 * elsewhere (CI logs, pipes) a line is printed at most once a second, an unchanged one at most
 * every 30 seconds, and always at the end.
 */
export function progressLine(label: string): { update(text: string, done?: boolean): void } {
  const tty = process.stderr.isTTY;
  let last = 0;
  let lastText = '';
  return {
    update(text, done = false) {
      const now = Date.now();
      if (!done && now - last < (tty ? 100 : 1000)) return;
      if (!done && !tty && text === lastText && now - last < 30_000) return;
      last = now;
      lastText = text;
      if (tty) process.stderr.write(`\r\x1b[K${label}: ${text}${done ? '\n' : ''}`);
      else process.stderr.write(`${label}: ${text}\n`);
    },
  };
}
