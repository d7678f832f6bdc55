/**
 * The benchmark's public entry: what the weft CLI may import. Everything
 * else under bench/ is the benchmark's own business.
 */
export { addBenchCommand } from './command';
