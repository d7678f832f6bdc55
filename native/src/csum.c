/* Internet checksums (RFC 1071) and the virtio-net header codec. See offload.h. */
#include "offload.h"

#include <string.h>

void weft_vnet_read(const uint8_t *p, struct weft_vnet_hdr *h) {
  h->flags = p[0];
  h->gso_type = p[1];
  h->hdr_len = (uint16_t)(p[2] | (p[3] << 8));
  h->gso_size = (uint16_t)(p[4] | (p[5] << 8));
  h->csum_start = (uint16_t)(p[6] | (p[7] << 8));
  h->csum_offset = (uint16_t)(p[8] | (p[9] << 8));
}

void weft_vnet_write(uint8_t *p, const struct weft_vnet_hdr *h) {
  p[0] = h->flags;
  p[1] = h->gso_type;
  p[2] = (uint8_t)h->hdr_len;
  p[3] = (uint8_t)(h->hdr_len >> 8);
  p[4] = (uint8_t)h->gso_size;
  p[5] = (uint8_t)(h->gso_size >> 8);
  p[6] = (uint8_t)h->csum_start;
  p[7] = (uint8_t)(h->csum_start >> 8);
  p[8] = (uint8_t)h->csum_offset;
  p[9] = (uint8_t)(h->csum_offset >> 8);
}

/*
 * The one's-complement sum does not depend on byte order (RFC 1071 §2(B)), so
 * words are added in native order and the result is swapped once at the end.
 * The bulk is added 64 bits at a time into two accumulators, each with its
 * own carry count (a carry out of 64 bits is worth 1 in one's complement:
 * the sum is kept modulo 2^64 - 1): two independent add/carry chains per 32
 * bytes instead of one add per 4 bytes. Every call must start at an even
 * offset of the checksummed stream (headers and segment payloads always do).
 */
uint64_t weft_csum_add(const uint8_t *p, size_t len, uint64_t sum) {
  uint64_t s0 = sum, s1 = 0, c0 = 0, c1 = 0;
  while (len >= 32) {
    uint64_t a, b, c, d;
    memcpy(&a, p, 8);
    memcpy(&b, p + 8, 8);
    memcpy(&c, p + 16, 8);
    memcpy(&d, p + 24, 8);
    s0 += a;
    c0 += s0 < a;
    s1 += b;
    c1 += s1 < b;
    s0 += c;
    c0 += s0 < c;
    s1 += d;
    c1 += s1 < d;
    p += 32;
    len -= 32;
  }
  /* fold the two chains and their carries into one value, modulo 2^64 - 1 */
  uint64_t carries = c0 + c1; /* at most len / 8: no overflow */
  s0 += s1;
  carries += s0 < s1;
  s0 += carries;
  s0 += s0 < carries;
  sum = s0;
  /* the tail, 32 bits at a time into the upper-bounded sum: split it first so nothing overflows */
  uint64_t t = (sum & 0xffffffffu) + (sum >> 32);
  while (len >= 4) {
    uint32_t a;
    memcpy(&a, p, 4);
    t += a;
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    uint16_t a;
    memcpy(&a, p, 2);
    t += a;
    p += 2;
    len -= 2;
  }
  if (len == 1) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    t += p[0];
#else
    t += (uint32_t)p[0] << 8;
#endif
  }
  return t;
}

uint16_t weft_csum_fold(uint64_t sum) {
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffffu) + (sum >> 16);
  sum = (sum & 0xffffu) + (sum >> 16);
  uint16_t s = (uint16_t)sum;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  s = (uint16_t)((s >> 8) | (s << 8));
#endif
  return s;
}

uint64_t weft_pseudo_sum(const uint8_t *ip, uint8_t proto, uint32_t l4len) {
  uint8_t ph[12];
  memcpy(ph, ip + 12, 8); /* source and destination addresses */
  ph[8] = 0;
  ph[9] = proto;
  ph[10] = (uint8_t)(l4len >> 8);
  ph[11] = (uint8_t)l4len;
  return weft_csum_add(ph, sizeof(ph), 0);
}

void weft_ipv4_set_csum(uint8_t *ip) {
  size_t ihl = (size_t)(ip[0] & 15) * 4;
  ip[10] = 0;
  ip[11] = 0;
  weft_put16(ip + 10, (uint16_t)~weft_csum_fold(weft_csum_add(ip, ihl, 0)));
}

int weft_csum_complete(uint8_t *pkt, size_t len, uint16_t csum_start, uint16_t csum_offset) {
  if ((size_t)csum_start + csum_offset + 2 > len || (csum_start & 1)) return -1;
  uint16_t c = (uint16_t)~weft_csum_fold(weft_csum_add(pkt + csum_start, len - csum_start, 0));
  /* UDP sends 0 as 0xffff (0 means "no checksum"); for TCP both mean the same sum */
  if (c == 0) c = 0xffff;
  weft_put16(pkt + csum_start + csum_offset, c);
  return 0;
}
