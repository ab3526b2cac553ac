import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { peakRssMb, vmHwmMb } from '../../functions/commons/model/peak-rss';

test("the peak RSS is this process's own high-water mark: at least what it holds now", () => {
  const held = Buffer.alloc(64 * 2 ** 20, 1); // touched, so resident
  const now = process.memoryUsage().rss / 2 ** 20;
  expect(peakRssMb()).toBeGreaterThanOrEqual(now - 1);
  expect(peakRssMb()).toBeGreaterThan(64);
  expect(held[held.length - 1]).toBe(1);
});

test('it is the peak, not what is resident now: a process that held 300 MB and let it go reads 300, its current RSS far less', async () => {
  const child = spawn('python3', ['-c', "x = bytearray(300 * 2**20); del x; print('ready', flush=True); import time; time.sleep(30)"]);
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d) => String(d).includes('ready') && resolve());
      child.on('error', reject);
    });
    const current = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024;
    expect(vmHwmMb(child.pid!)).toBeGreaterThan(300);
    // The control: what a current-RSS reading would have said.
    expect(current).toBeLessThan(100);
  } finally {
    child.kill();
  }
});
