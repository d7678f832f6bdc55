/*
 * Segmentation offload in userspace: checksums, splitting TCP/UDP
 * super-packets read from a TUN with a virtio-net header into wire-sized IPv4
 * packets (GSO), and coalescing consecutive segments of a flow back into one
 * super-packet for a single TUN write (GRO).
 *
 * Pure C over caller-owned memory: no allocation, no system calls.
 */
#ifndef WEFT_OFFLOAD_H
#define WEFT_OFFLOAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* virtio_net_hdr (10 bytes, little-endian fields) */
#define WEFT_VNET_HDR_LEN 10
#define WEFT_VNET_F_NEEDS_CSUM 1
#define WEFT_VNET_GSO_NONE 0
#define WEFT_VNET_GSO_TCPV4 1
#define WEFT_VNET_GSO_UDP_L4 5
#define WEFT_VNET_GSO_ECN 0x80

/* TUNSETOFFLOAD bits; USO is newer than some distribution headers */
#define WEFT_TUN_F_CSUM 0x01
#define WEFT_TUN_F_TSO4 0x02
#define WEFT_TUN_F_TSO6 0x04
#define WEFT_TUN_F_TSO_ECN 0x08
#define WEFT_TUN_F_USO4 0x20
#define WEFT_TUN_F_USO6 0x40

/* Room for one segment's IPv4 + TCP header (60 + 60) */
#define WEFT_SEG_HDR_MAX 128

/* Big-endian (network order) field access */
static inline uint16_t weft_get16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t weft_get32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void weft_put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static inline void weft_put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

struct weft_vnet_hdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
};

void weft_vnet_read(const uint8_t *p, struct weft_vnet_hdr *h);
void weft_vnet_write(uint8_t *p, const struct weft_vnet_hdr *h);

/* ---- checksums ---- */

/* Adds bytes to a running one's-complement sum (native byte order, unfolded). */
uint64_t weft_csum_add(const uint8_t *p, size_t len, uint64_t sum);
/* Folds to 16 bits and returns the sum as a big-endian-valued integer (not complemented). */
uint16_t weft_csum_fold(uint64_t sum);
/* Sum of the IPv4 pseudo-header for protocol `proto` and L4 length `l4len`. */
uint64_t weft_pseudo_sum(const uint8_t *ip, uint8_t proto, uint32_t l4len);
/* Writes a correct IPv4 header checksum. */
void weft_ipv4_set_csum(uint8_t *ip);

/*
 * Completes a partial checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM): sums the
 * packet from csum_start to the end (the field holds the pseudo-header sum)
 * and stores the result at csum_start + csum_offset. UDP's 0 becomes 0xffff.
 * Returns 0, or -1 when the offsets do not fit the packet.
 */
int weft_csum_complete(uint8_t *pkt, size_t len, uint16_t csum_start, uint16_t csum_offset);

/* ---- GSO: split ---- */

struct weft_seg {
  const uint8_t *hdr;     /* IPv4 + L4 header of this segment (in the caller's header area) */
  uint16_t hdr_len;
  const uint8_t *payload; /* points into the super-packet */
  uint32_t payload_len;
};

/*
 * Splits the IPv4 TCP or UDP super-packet `pkt` (len bytes, without the vnet
 * header `h`) into segments of at most h->gso_size payload bytes. Each
 * segment's header is written to hdr_area + k * WEFT_SEG_HDR_MAX with its own
 * IP total length, id (+k), header checksum, TCP sequence number (+k*gso_size),
 * flags (FIN/PSH only on the last, CWR only on the first) or UDP length, and
 * a full L4 checksum over header and payload. Payload bytes are not copied.
 * Returns the number of segments (<= max_segs), or -1 when the packet is not
 * one this function can split (the caller drops it and counts it).
 */
int weft_gso_split(const uint8_t *pkt, size_t len, const struct weft_vnet_hdr *h,
                   uint8_t *hdr_area, struct weft_seg *segs, int max_segs);

/* ---- GRO: coalesce ---- */

#define WEFT_GRO_TCP 0x1 /* merge consecutive TCP segments of a flow */
#define WEFT_GRO_UDP 0x2 /* merge consecutive equal-size UDP datagrams of a flow (needs TUN USO) */
/* Merge without re-verifying each segment's TCP/UDP checksum: only for packets whose every
   byte a checksum the kernel has verified already covers (the outer UDP checksum of a
   datagram; the socket refuses datagrams without one, see weft_udp_reject_zero_csum). */
#define WEFT_GRO_TRUST_L4_CSUM 0x4
#define WEFT_GRO_MAX_SEGS 64

/* One write to the TUN: `count` input packets starting at `first`. */
struct weft_gro_group {
  int first;
  int count;
  /* for count > 1: the vnet header to write and the merged packet's payload bytes */
  struct weft_vnet_hdr vnet;
  uint32_t payload;
};

/*
 * Plans writes for `count` plain IPv4 packets (slab + offsets[i], lens[i]),
 * keeping their order. Consecutive segments of one TCP flow (same addresses,
 * ports, ACK, options, TOS, TTL, DF, window, urgent pointer; without DF, IP
 * IDs that go up by one; adjacent sequence numbers; flags ACK or ACK|PSH, so
 * never URG; none after a PSH or a short segment; valid IP and L4 checksums)
 * become one group, whose first packet's IP and TCP headers are rewritten
 * in place for the merged length (TCP checksum field = pseudo-header sum, for
 * NEEDS_CSUM). UDP likewise with WEFT_GRO_UDP. Everything else is a group of
 * one. Returns the number of groups.
 */
int weft_gro_plan(uint8_t *slab, const int32_t *offsets, const int32_t *lens, int count, int flags,
                  struct weft_gro_group *groups);

#endif
