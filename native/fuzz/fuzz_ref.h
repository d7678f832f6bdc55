/*
 * Reference code shared by the fuzz harnesses: written to be obviously right
 * rather than fast, and independent of native/src (no native-order sums, no
 * 32-bit words): the harnesses compare the real code against it.
 */
#ifndef WEFT_FUZZ_REF_H
#define WEFT_FUZZ_REF_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "offload.h"

/* An invariant that does not hold is a finding: libFuzzer saves the input that broke it. */
#define WEFT_CHECK(cond)                                                                   \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);        \
      abort();                                                                             \
    }                                                                                      \
  } while (0)

static inline uint16_t ref_be16(const uint8_t *p) { return (uint16_t)(p[0] * 256 + p[1]); }
static inline uint32_t ref_be32(const uint8_t *p) {
  return (uint32_t)ref_be16(p) * 65536u + ref_be16(p + 2);
}

/* Folds a plain sum of 16-bit words the RFC 1071 way: end-around carry until it fits. */
static inline uint16_t ref_fold(uint64_t total) {
  while (total > 0xffff) total = (total & 0xffff) + (total >> 16);
  return (uint16_t)total;
}

/* Plain sum of the big-endian 16-bit words of p[0, len) (an odd last byte is the high half). */
static inline uint64_t ref_words(const uint8_t *p, size_t len) {
  uint64_t total = 0;
  for (size_t i = 0; i < len; i += 2) total += (uint64_t)p[i] * 256 + (i + 1 < len ? p[i + 1] : 0);
  return total;
}

/* The one's complement sum of p[0, len), folded (not complemented). */
static inline uint16_t ref_sum(const uint8_t *p, size_t len) { return ref_fold(ref_words(p, len)); }

/* Pseudo-header words (addresses, protocol, L4 length) of the IPv4 header ip, as a plain sum. */
static inline uint64_t ref_pseudo(const uint8_t *ip, uint8_t proto, uint32_t l4len) {
  return ref_words(ip + 12, 8) + proto + (l4len >> 16) + (l4len & 0xffff);
}

/* Does the IPv4 header checksum verify? */
static inline int ref_ip_csum_ok(const uint8_t *ip) {
  return ref_sum(ip, (size_t)(ip[0] & 15) * 4) == 0xffff;
}

/* Does the TCP/UDP checksum of l4[0, l4len) (after IPv4 header ip) verify? */
static inline int ref_l4_csum_ok(const uint8_t *ip, uint8_t proto, const uint8_t *l4, size_t l4len) {
  return ref_fold(ref_pseudo(ip, proto, (uint32_t)l4len) + ref_words(l4, l4len)) == 0xffff;
}

/*
 * What weft_gso_split must do with `pkt` (offload.h's contract, restated):
 * the number of segments, or -1 when the packet is not an IPv4 TCP/UDP
 * super-packet it can split. Fills the header lengths and kind.
 */
static inline int ref_gso_nsegs(const uint8_t *pkt, size_t len, const struct weft_vnet_hdr *h, int max_segs,
                                size_t *ihl_out, size_t *l4hdr_out, int *tcp_out) {
  if (len < 20 || (pkt[0] >> 4) != 4) return -1;
  size_t ihl = (size_t)(pkt[0] & 15) * 4;
  if (ihl < 20 || ihl > len) return -1;
  if ((pkt[6] & 0x3f) != 0 || pkt[7] != 0) return -1; /* MF or a fragment offset */
  int kind = h->gso_type & ~WEFT_VNET_GSO_ECN;
  int tcp;
  if (kind == WEFT_VNET_GSO_TCPV4 && pkt[9] == 6) tcp = 1;
  else if (kind == WEFT_VNET_GSO_UDP_L4 && pkt[9] == 17) tcp = 0;
  else return -1;
  size_t l4hdr = 8;
  if (tcp) {
    if (ihl + 20 > len) return -1;
    l4hdr = (size_t)(pkt[ihl + 12] >> 4) * 4;
    if (l4hdr < 20) return -1;
  }
  size_t hdr = ihl + l4hdr;
  if (hdr > len || hdr > WEFT_SEG_HDR_MAX || h->gso_size == 0) return -1;
  size_t payload = len - hdr;
  size_t n = payload == 0 ? 1 : (payload + h->gso_size - 1) / h->gso_size;
  if (n > (size_t)max_segs) return -1;
  *ihl_out = ihl;
  *l4hdr_out = l4hdr;
  *tcp_out = tcp;
  return (int)n;
}

#endif
