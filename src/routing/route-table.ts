/**
 * The overlay route table: `subnet -> peer (public IPv4, UDP port)`, one route per
 * other host's lease, with longest-prefix lookup.
 *
 * Two halves, one per world:
 *
 * 1. `RouteTable` lives in the agent (main thread). It is the editable source of
 *    truth: set / delete / get / lookup, and `snapshot()`, which flattens the table
 *    into a `RouteSnapshot` made of typed arrays and numbers only.
 * 2. A `RouteSnapshot` crosses to a worker with `postMessage` (structured clone;
 *    nothing in it has a prototype that matters). The worker builds a
 *    `CompiledRoutes` from it and calls `lookup(dst)` once per packet.
 *
 * Every route also has a counter slot: a small integer that stays the same for
 * a prefix as long as it is in the table, across snapshots, so that the data
 * plane can keep per-peer counters in shared memory indexed by it (see
 * src/workers/peer-counters.ts). A removed route's slot is reused only after
 * the caller has confirmed that every worker has moved past it and has cleared
 * the slot's counters (releaseSlots).
 *
 * The compiled form is an open-addressing hash table keyed by
 * (masked network, prefix length). A lookup walks the prefix lengths that have a
 * route in the destination's /8, longest first (flannel: exactly one, the lease
 * length), masks the destination, hashes and probes. Nothing is allocated on that path.
 */

import { ConfigError, StateError } from '../errors';
import { formatIpv4, formatPrefix, prefixMask, type Ipv4Prefix } from '../net/ipv4';

/** Where packets for a route go: the peer host's public IPv4 address and UDP port. */
export interface Peer {
  /** Public IPv4 address, unsigned 32-bit. */
  readonly address: number;
  /** UDP port, 1..65535. */
  readonly port: number;
}

/** One route. Entries handed out by `RouteTable` are frozen. */
export interface RouteEntry {
  readonly prefix: Ipv4Prefix;
  readonly peer: Peer;
  /** The route's counter slot (see the header): stable while the prefix stays in the table. */
  readonly slot: number;
}

/**
 * A frozen, flat copy of a `RouteTable`: typed arrays and numbers only, so it survives
 * `structuredClone` / `postMessage` unchanged. Every snapshot owns its arrays; later
 * changes to the table never reach an earlier snapshot.
 *
 * Route `i` (0 <= i < size) is `routeNetwork[i]/routeLength[i] -> peerAddress[i]:peerPort[i]`,
 * in the order of `RouteTable.entries()` (network, then length).
 */
export interface RouteSnapshot {
  /** `RouteTable.version` when the snapshot was taken. */
  readonly version: number;
  /** Number of routes. */
  readonly size: number;
  /** The distinct prefix lengths present, longest first. */
  readonly lengths: Uint8Array;
  /**
   * The hash table, `2 * capacity` entries, capacity a power of two with load <= 0.5.
   * Slot `s` is `slots[2s]` = masked network (as a signed 32-bit value) and
   * `slots[2s + 1]` = tag = `((routeIndex + 1) << 6) | length`; tag 0 = empty slot.
   */
  readonly slots: Int32Array;
  /** Route networks, by route index. */
  readonly routeNetwork: Uint32Array;
  /** Route prefix lengths, by route index. */
  readonly routeLength: Uint8Array;
  /** Peer public IPv4 addresses, by route index. */
  readonly peerAddress: Uint32Array;
  /** Peer UDP ports, by route index. */
  readonly peerPort: Uint16Array;
  /** Counter slot of each route, by route index (distinct, each < slotCount). */
  readonly routeSlot: Uint32Array;
  /** Slots in use or waiting to be released: per-peer counter blocks need this many. */
  readonly slotCount: number;
}

/** Smallest hash table built (slots). Keeps the hash shift <= 29, never 32. */
const MIN_CAPACITY = 8;
/** Bits in a tag that hold the prefix length (0..32 needs 6). */
const TAG_LENGTH_BITS = 6;
const TAG_LENGTH_MASK = (1 << TAG_LENGTH_BITS) - 1;
/** Route indexes must fit in a tag beside the length, as a positive int32. */
const MAX_ROUTES = (1 << (31 - TAG_LENGTH_BITS)) - 2;

/**
 * The slot for a (masked network, length) key: a multiplicative (Fibonacci) hash,
 * top `32 - shift` bits. Lease networks differ only in a few middle bits (e.g. the
 * third octet of /24s in a /16); the multiply spreads those into the top bits.
 * `network` may be signed or unsigned; only its 32 bits matter.
 */
function slotOf(network: number, length: number, shift: number): number {
  const key = (network ^ Math.imul(length, 0x27d4eb2d)) | 0;
  return Math.imul(key, 0x9e3779b1) >>> shift;
}

/** log2 of a power of two, for capacities. */
function log2(powerOfTwo: number): number {
  return 31 - Math.clz32(powerOfTwo);
}

function isU32(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value <= 0xffffffff;
}

function prefixText(prefix: Ipv4Prefix): string {
  const { network, length } = prefix;
  return `${isU32(network) ? formatIpv4(network) : String(network)}/${String(length)}`;
}

/** Throws a ConfigError unless `prefix` is a valid, normalized IPv4 prefix. */
function checkPrefix(prefix: Ipv4Prefix): void {
  const { network, length } = prefix;
  if (!Number.isInteger(length) || length < 0 || length > 32) {
    throw new ConfigError(
      'route',
      prefixText(prefix),
      `route prefix ${prefixText(prefix)} has an invalid length: use an integer from 0 to 32`,
    );
  }
  if (!isU32(network)) {
    throw new ConfigError(
      'route',
      prefixText(prefix),
      `route prefix ${prefixText(prefix)} has an invalid network: use an unsigned 32-bit IPv4 address`,
    );
  }
  const masked = (network & prefixMask(length)) >>> 0;
  if (masked !== network) {
    throw new ConfigError(
      'route',
      formatPrefix(prefix),
      `route prefix ${formatPrefix(prefix)} has host bits set: use ${formatPrefix({ network: masked, length })}`,
    );
  }
}

function checkPeer(prefix: Ipv4Prefix, peer: Peer): void {
  const { address, port } = peer;
  if (!isU32(address)) {
    throw new ConfigError(
      'route',
      formatPrefix(prefix),
      `route ${formatPrefix(prefix)}: peer address ${String(address)} is not an unsigned 32-bit IPv4 address`,
    );
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigError(
      'route',
      formatPrefix(prefix),
      `route ${formatPrefix(prefix)}: peer port ${String(port)} (to ${formatIpv4(address)}) is not valid: use 1..65535`,
    );
  }
}

/** Map key for a normalized prefix: unique, exact (below 2^38). */
function keyOf(network: number, length: number): number {
  return length * 0x100000000 + network;
}

function compareEntries(a: RouteEntry, b: RouteEntry): number {
  return a.prefix.network - b.prefix.network || a.prefix.length - b.prefix.length;
}

/**
 * The editable route table, owned by the agent (main thread). Not for the packet
 * path: workers use `CompiledRoutes` built from `snapshot()`.
 */
export class RouteTable {
  private readonly routes = new Map<number, RouteEntry>();
  /** routes per prefix length, 0..32 */
  private readonly lengthCounts = new Int32Array(33);
  private changes = 0;
  /** slots handed out so far (the high-water mark) */
  private slotsMade = 0;
  /** released slots, reusable (smallest last, so reuse keeps slot numbers low) */
  private readonly freeSlots: number[] = [];
  /** slots of removed routes, with the table version that removed them, until releaseSlots */
  private readonly retiredSlots: Array<{ readonly slot: number; readonly version: number }> = [];

  /** Increments on every change (set that changed something, delete that removed, clear of a non-empty table). */
  get version(): number {
    return this.changes;
  }

  get size(): number {
    return this.routes.size;
  }

  /**
   * Adds or replaces the route for `prefix`. Returns true when the table changed
   * (new route, or a different peer), false when the same route was already there.
   * Throws ConfigError (path 'route') when `prefix` is not normalized or `peer` is invalid.
   */
  set(prefix: Ipv4Prefix, peer: Peer): boolean {
    checkPrefix(prefix);
    checkPeer(prefix, peer);
    if (this.routes.size >= MAX_ROUTES) {
      throw new ConfigError('route', formatPrefix(prefix), `too many routes: at most ${MAX_ROUTES} are supported`);
    }
    const key = keyOf(prefix.network, prefix.length);
    const old = this.routes.get(key);
    if (old !== undefined && old.peer.address === peer.address && old.peer.port === peer.port) {
      return false;
    }
    // a subnet that moves to another address keeps its slot: its figures go on
    const slot = old?.slot ?? this.freeSlots.pop() ?? this.slotsMade++;
    const entry: RouteEntry = Object.freeze({
      prefix: Object.freeze({ network: prefix.network, length: prefix.length }),
      peer: Object.freeze({ address: peer.address, port: peer.port }),
      slot,
    });
    this.routes.set(key, entry);
    if (old === undefined) this.lengthCounts[prefix.length]++;
    this.changes++;
    return true;
  }

  /** Removes the route for exactly `prefix`. Returns true when there was one. */
  delete(prefix: Ipv4Prefix): boolean {
    checkPrefix(prefix);
    const key = keyOf(prefix.network, prefix.length);
    const old = this.routes.get(key);
    if (old === undefined) return false;
    this.routes.delete(key);
    this.lengthCounts[prefix.length]--;
    this.changes++;
    this.retiredSlots.push({ slot: old.slot, version: this.changes });
    return true;
  }

  /**
   * Makes the slots of routes removed at or before table version `applied`
   * reusable. The caller promises that no reader of a snapshot older than
   * `applied` still writes to them (every worker has acknowledged it);
   * `clear` is called once per slot, before any later `set` can reuse it,
   * so that a new subnet starts from zero. Returns how many were released.
   */
  releaseSlots(applied: number, clear: (slot: number) => void): number {
    let released = 0;
    for (let i = 0; i < this.retiredSlots.length;) {
      const r = this.retiredSlots[i] as { slot: number; version: number };
      if (r.version <= applied) {
        clear(r.slot);
        this.freeSlots.push(r.slot);
        this.retiredSlots.splice(i, 1);
        released++;
      } else {
        i++;
      }
    }
    if (released > 0) this.freeSlots.sort((a, b) => b - a);
    return released;
  }

  /** Slots handed out so far: counter blocks indexed by slot need this many entries. */
  get slotCount(): number {
    return this.slotsMade;
  }

  /** The peer for exactly `prefix` (no longest-prefix matching). */
  get(prefix: Ipv4Prefix): Peer | undefined {
    checkPrefix(prefix);
    return this.routes.get(keyOf(prefix.network, prefix.length))?.peer;
  }

  /** The route with the longest prefix containing `dst` (unsigned 32-bit), if any. */
  lookup(dst: number): RouteEntry | undefined {
    if (this.routes.size === 0) return undefined;
    for (let length = 32; length >= 0; length--) {
      if (this.lengthCounts[length] === 0) continue;
      const entry = this.routes.get(keyOf((dst & prefixMask(length)) >>> 0, length));
      if (entry !== undefined) return entry;
    }
    return undefined;
  }

  /** All routes, sorted by network then prefix length. Route index i in a snapshot is entries()[i]. */
  entries(): RouteEntry[] {
    return Array.from(this.routes.values()).sort(compareEntries);
  }

  clear(): void {
    if (this.routes.size === 0) return;
    this.changes++;
    for (const entry of this.routes.values()) this.retiredSlots.push({ slot: entry.slot, version: this.changes });
    this.routes.clear();
    this.lengthCounts.fill(0);
  }

  /** A flat, immutable copy of the table for `CompiledRoutes` (see RouteSnapshot). */
  snapshot(): RouteSnapshot {
    const entries = this.entries();
    const size = entries.length;

    const lengthList: number[] = [];
    for (let length = 32; length >= 0; length--) {
      if (this.lengthCounts[length] !== 0) lengthList.push(length);
    }

    let capacity = MIN_CAPACITY;
    while (capacity < 2 * size) capacity *= 2;
    const shift = 32 - log2(capacity);
    const slotMask = capacity - 1;
    const slots = new Int32Array(2 * capacity);

    const routeNetwork = new Uint32Array(size);
    const routeLength = new Uint8Array(size);
    const peerAddress = new Uint32Array(size);
    const peerPort = new Uint16Array(size);
    const routeSlot = new Uint32Array(size);

    for (let i = 0; i < size; i++) {
      const { prefix, peer, slot } = entries[i] as RouteEntry;
      routeNetwork[i] = prefix.network;
      routeLength[i] = prefix.length;
      peerAddress[i] = peer.address;
      peerPort[i] = peer.port;
      routeSlot[i] = slot;

      let s = slotOf(prefix.network, prefix.length, shift);
      while (slots[2 * s + 1] !== 0) s = (s + 1) & slotMask;
      slots[2 * s] = prefix.network | 0;
      slots[2 * s + 1] = ((i + 1) << TAG_LENGTH_BITS) | prefix.length;
    }

    return {
      version: this.changes,
      size,
      lengths: Uint8Array.from(lengthList),
      slots,
      routeNetwork,
      routeLength,
      peerAddress,
      peerPort,
      routeSlot,
      slotCount: this.slotsMade,
    };
  }
}

function malformed(what: string): StateError {
  return new StateError(`route snapshot is malformed: ${what}; build it with RouteTable.snapshot()`);
}

/** Lookups first pick a bucket by the destination's top BUCKET_BITS bits (its /8). */
const BUCKET_BITS = 8;
const BUCKET_SHIFT = 32 - BUCKET_BITS;

/**
 * The worker-side route table, built from a `RouteSnapshot`. Read-only; to change
 * routes, the agent sends a new snapshot and the worker builds a new CompiledRoutes.
 *
 * Besides the snapshot's hash table it keeps, per /8 of the address space, a bitmap
 * of the prefix lengths that have a route overlapping that /8 (bit L-1 for length L;
 * the /0 route, if any, is the fallback). A lookup probes only those lengths, longest
 * first: one probe for a flannel table (all leases share one length), few for a
 * mixed table whose routes are spread over the address space.
 *
 * The instance keeps references to the snapshot's arrays (no copy): do not modify
 * them afterwards. A snapshot received through postMessage is already a private copy.
 */
export class CompiledRoutes {
  readonly version: number;
  readonly size: number;
  /** Peer public IPv4 address by route index (the value `lookup` returns). */
  readonly peerAddress: Uint32Array;
  /** Peer UDP port by route index. */
  readonly peerPort: Uint16Array;
  /** Counter slot by route index. */
  readonly routeSlot: Uint32Array;
  readonly slotCount: number;

  /** per /8: bit L-1 set when a route of length L (1..32) overlaps it */
  private readonly bucketLengths: Int32Array;
  /** index of the 0.0.0.0/0 route, or -1 */
  private readonly defaultRoute: number;
  private readonly slots: Int32Array;
  private readonly slotMask: number;
  private readonly shift: number;
  private readonly routeNetwork: Uint32Array;
  private readonly routeLength: Uint8Array;
  /** The distinct peer addresses as an open-addressing set (0 marks an empty slot; 0.0.0.0 is never a peer). */
  private readonly peerSet: Int32Array;
  /** Beside each peerSet entry: the index of the first route (in subnet order) to that address. */
  private readonly peerSetRoute: Int32Array;
  private readonly peerSetMask: number;
  private readonly peerSetShift: number;

  /** Checks the snapshot (it may have crossed a thread boundary); throws StateError when malformed. */
  constructor(snapshot: RouteSnapshot) {
    const { size, lengths, slots, routeNetwork, routeLength, peerAddress, peerPort, routeSlot, slotCount } = snapshot;
    if (!Number.isInteger(snapshot.version) || !Number.isInteger(size) || size < 0 || size > MAX_ROUTES) {
      throw malformed('version or size is not a valid integer');
    }
    if (!Number.isInteger(slotCount) || slotCount < size || slotCount > 2 * MAX_ROUTES) {
      throw malformed('slotCount is not an integer from size to twice the route limit');
    }
    if (
      !(lengths instanceof Uint8Array) ||
      !(slots instanceof Int32Array) ||
      !(routeNetwork instanceof Uint32Array) ||
      !(routeLength instanceof Uint8Array) ||
      !(peerAddress instanceof Uint32Array) ||
      !(peerPort instanceof Uint16Array) ||
      !(routeSlot instanceof Uint32Array)
    ) {
      throw malformed('a field has the wrong typed-array type');
    }
    if (
      routeNetwork.length !== size ||
      routeLength.length !== size ||
      peerAddress.length !== size ||
      peerPort.length !== size ||
      routeSlot.length !== size
    ) {
      throw malformed(`per-route arrays must have ${size} elements`);
    }
    const capacity = slots.length / 2;
    if (capacity < MIN_CAPACITY || (capacity & (capacity - 1)) !== 0 || capacity < 2 * size) {
      throw malformed(`hash table capacity ${capacity} is not a power of two >= ${MIN_CAPACITY} with load <= 0.5`);
    }

    // distinct slots below slotCount: counters of two routes never mix, writes stay inside the block
    const slotSeen = new Uint8Array(slotCount);
    for (let i = 0; i < size; i++) {
      const slot = routeSlot[i] as number;
      if (slot >= slotCount || slotSeen[slot] === 1) throw malformed(`route ${i} has a slot that is out of range or shared`);
      slotSeen[slot] = 1;
    }

    const bucketLengths = new Int32Array(1 << BUCKET_BITS);
    let defaultRoute = -1;
    const present = new Uint8Array(33);
    for (let i = 0; i < size; i++) {
      const length = routeLength[i] as number;
      const network = routeNetwork[i] as number;
      if (length > 32 || ((network & prefixMask(length)) >>> 0) !== network) {
        throw malformed(`route ${i} is not a normalized prefix`);
      }
      present[length] = 1;
      if (length === 0) {
        defaultRoute = i;
        continue;
      }
      const bit = 1 << (length - 1);
      const first = network >>> BUCKET_SHIFT;
      const count = length >= BUCKET_BITS ? 1 : 1 << (BUCKET_BITS - length);
      for (let b = first; b < first + count; b++) bucketLengths[b] = (bucketLengths[b] as number) | bit;
    }
    let expected = 0;
    for (let length = 32; length >= 0; length--) expected += present[length] as number;
    let previous = 33;
    for (let i = 0; i < lengths.length; i++) {
      const length = lengths[i] as number;
      if (length >= previous || present[length] !== 1) {
        throw malformed('lengths must list the routes\' prefix lengths, distinct, longest first');
      }
      previous = length;
    }
    if (lengths.length !== expected) {
      throw malformed('lengths must list the routes\' prefix lengths, distinct, longest first');
    }

    this.version = snapshot.version;
    this.size = size;
    this.peerAddress = peerAddress;
    this.peerPort = peerPort;
    this.routeSlot = routeSlot;
    this.slotCount = slotCount;
    this.routeNetwork = routeNetwork;
    this.routeLength = routeLength;
    this.slots = slots;
    this.slotMask = capacity - 1;
    this.shift = 32 - log2(capacity);
    this.bucketLengths = bucketLengths;
    this.defaultRoute = defaultRoute;

    let setCapacity = MIN_CAPACITY;
    while (setCapacity < 2 * size) setCapacity *= 2;
    this.peerSet = new Int32Array(setCapacity);
    this.peerSetRoute = new Int32Array(setCapacity);
    this.peerSetMask = setCapacity - 1;
    this.peerSetShift = 32 - log2(setCapacity);
    for (let i = 0; i < size; i++) {
      const address = (peerAddress[i] as number) | 0;
      if (address === 0) continue;
      let s = slotOf(address, 32, this.peerSetShift);
      while (this.peerSet[s] !== 0 && this.peerSet[s] !== address) s = (s + 1) & this.peerSetMask;
      if (this.peerSet[s] === 0) this.peerSetRoute[s] = i; // routes come in subnet order: the first one wins
      this.peerSet[s] = address;
    }
  }

  /**
   * Whether `address` is the public IP of some route's peer: a host weft
   * knows (a lease or a static --peer).
   */
  isPeer(address: number): boolean {
    return this.peerRoute(address) >= 0;
  }

  /**
   * The index of the first route (lowest subnet) whose peer is `address`, or
   * -1 when no route's peer is: the sending host of a datagram, for source
   * validation and for its per-peer receive counters. Hot path: once per
   * received message; no allocation.
   */
  peerRoute(address: number): number {
    const key = address | 0;
    if (key === 0) return -1;
    const set = this.peerSet;
    let s = slotOf(key, 32, this.peerSetShift);
    for (;;) {
      const v = set[s] as number;
      if (v === key) return this.peerSetRoute[s] as number;
      if (v === 0) return -1;
      s = (s + 1) & this.peerSetMask;
    }
  }

  /**
   * The index of the route with the longest prefix containing `dst`, or -1.
   * `dst` is the destination address, unsigned or signed 32-bit (only the bits matter;
   * `DataView.getInt32` gives a value that always stays a small integer in V8).
   * Hot path: per packet. No allocation; integer math only.
   */
  lookup(dst: number): number {
    const slots = this.slots;
    const slotMask = this.slotMask;
    const shift = this.shift;
    let pending = this.bucketLengths[dst >>> BUCKET_SHIFT] as number;
    while (pending !== 0) {
      const bit = 31 - Math.clz32(pending); // the longest length still to try, minus one
      pending ^= 1 << bit;
      const length = bit + 1;
      const network = dst & (-1 << (31 - bit)); // mask of `length` bits
      let s = slotOf(network, length, shift);
      for (;;) {
        const tag = slots[2 * s + 1] as number;
        if (tag === 0) break; // empty slot: no route of this length
        if ((tag & TAG_LENGTH_MASK) === length && slots[2 * s] === network) {
          return (tag >>> TAG_LENGTH_BITS) - 1;
        }
        s = (s + 1) & slotMask;
      }
    }
    return this.defaultRoute;
  }

  /** The prefix of route `index` (for logs and diagnostics, not the packet path). */
  prefixOf(index: number): Ipv4Prefix {
    if (!Number.isInteger(index) || index < 0 || index >= this.size) {
      throw new RangeError(`route index ${index} is out of range 0..${this.size - 1}`);
    }
    return { network: this.routeNetwork[index] as number, length: this.routeLength[index] as number };
  }
}
