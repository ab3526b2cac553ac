// Preloaded with `node --require` by benchmarks: reports the process's peak RSS when it exits.
// VmHWM, not getrusage: ru_maxrss survives execve, so a child would report its parent's peak.
const { readFileSync } = require('node:fs');

process.on('exit', () => {
  const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))[1];
  process.stderr.write(`max-rss-kb ${kb}\n`);
});
