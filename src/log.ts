/**
 * Structured, levelled logs on stderr (pino). `-v` raises the level:
 * 0 info, 1 debug, 2+ trace. The packet path never logs; it bumps counters.
 */
import pino, { type Logger } from 'pino';

export type { Logger };

export function createLogger(verbosity: number, name = 'weft'): Logger {
  const level = verbosity >= 2 ? 'trace' : verbosity === 1 ? 'debug' : 'info';
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
}

/** A logger that drops everything (tests, library use). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
