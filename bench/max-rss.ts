// Preloaded with `node --require` by benchmarks: reports the process's peak RSS when it exits.
import { peakRssMb } from '../functions/commons/model/peak-rss';

process.on('exit', () => process.stderr.write(`max-rss-kb ${Math.round(peakRssMb() * 1024)}\n`));
