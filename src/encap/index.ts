/** Pure packet code: no I/O, functions over caller-owned byte buffers. */
export * from './constants';
export * from './checksum';
export * from './ipv4';
export * from './icmp';
