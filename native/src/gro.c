/* Coalescing consecutive segments of a flow into one TUN write. See offload.h. */
#include "offload.h"

#include <string.h>

#define TCP_ACK 0x10
#define TCP_PSH 0x08
#define IP_MAX_LEN 65535

/* What a packet must look like to be merged; fills *l4hdr and *payload. */
static int mergeable(const uint8_t *p, int32_t len, int flags, uint8_t *proto, size_t *l4hdr, size_t *payload) {
  if (len < 28 || p[0] != 0x45) return 0;          /* IPv4 without options */
  if (weft_get16(p + 2) != (uint16_t)len) return 0;
  /* no fragments, and no flag but DF: the reserved bit of a merged packet's later segments would
     come back as the first's (Linux's inet_gro_receive flushes on any frag_off bit but DF) */
  if ((weft_get16(p + 6) & ~0x4000) != 0) return 0;
  /* a merged write gets a fresh header checksum: a corrupt header would come out repaired and
     be delivered where the kernel drops it (Linux's inet_gro_receive checks it too) */
  if (weft_csum_fold(weft_csum_add(p, 20, 0)) != 0xffff) return 0;
  *proto = p[9];
  if (*proto == 6 && (flags & WEFT_GRO_TCP)) {
    if (len < 40) return 0;
    size_t thl = (size_t)(p[32] >> 4) * 4;
    if (thl < 20 || 20 + thl > (size_t)len) return 0;
    if (p[32] & 0x0f) return 0; /* NS/AE or reserved bits: the kernel's GRO does not merge them either */
    uint8_t f = p[33];
    if (!(f & TCP_ACK) || (f & ~(TCP_ACK | TCP_PSH))) return 0; /* ACK or ACK|PSH only */
    *l4hdr = thl;
  } else if (*proto == 17 && (flags & WEFT_GRO_UDP)) {
    if (weft_get16(p + 24) != (uint16_t)(len - 20)) return 0;
    *l4hdr = 8;
  } else {
    return 0;
  }
  *payload = (size_t)len - 20 - *l4hdr;
  if (*payload == 0) return 0;
  /* only segments whose checksum is right are merged: merging recomputes it (unless the
     outer checksum the kernel verified covers every byte already) */
  if (flags & WEFT_GRO_TRUST_L4_CSUM) return 1;
  uint64_t sum = weft_pseudo_sum(p, *proto, (uint32_t)(len - 20));
  if (*proto == 17 && weft_get16(p + 26) == 0) return 1; /* UDP without checksum */
  return weft_csum_fold(weft_csum_add(p + 20, (size_t)len - 20, sum)) == 0xffff;
}

/*
 * Can `q` be the packet at position `k` (k >= 1) of the group that starts
 * with `p`? Everything a merged header carries only once must match, since
 * the kernel resegments a merged write by copying the first header.
 *
 * The IP ID: resegmentation numbers the segments id(p) + k (a virtio-net
 * header has no way to ask for fixed IDs). Without DF the ID is what
 * reassembly goes by, so it must already be exactly that, as Linux's GRO
 * demands (inet_gro_receive/tcp_gro_receive's flush_id: a non-atomic flow
 * must increment by one). With DF the datagram is atomic and its ID carries
 * nothing (RFC 6864 section 4.1), so any ID merges. Linux is stricter there
 * (fixed or incrementing, so its own resegmentation can restore either), but
 * a merged TUN write is renumbered id + k whatever the rule, so that
 * strictness would only lose merges.
 */
static int same_flow(const uint8_t *p, const uint8_t *q, uint8_t proto, size_t l4hdr, int k) {
  if (p[1] != q[1] || p[8] != q[8] || p[9] != q[9]) return 0;      /* TOS, TTL, protocol */
  if ((p[6] & 0x40) != (q[6] & 0x40)) return 0;                    /* DF */
  if (!(p[6] & 0x40) && weft_get16(q + 4) != (uint16_t)(weft_get16(p + 4) + k)) return 0; /* IP ID */
  if (memcmp(p + 12, q + 12, 8) != 0) return 0;                    /* addresses */
  if (memcmp(p + 20, q + 20, 4) != 0) return 0;                    /* ports */
  if (proto == 6) {
    if ((size_t)(q[32] >> 4) * 4 != l4hdr) return 0;
    if (memcmp(p + 28, q + 28, 4) != 0) return 0;                  /* ACK number */
    if (memcmp(p + 34, q + 34, 2) != 0) return 0;                  /* window */
    /* urgent pointer: a URG segment never gets here (mergeable() takes ACK|PSH only) and
       without URG the field means nothing, but resegmentation would copy the first
       segment's into all of them; Linux ignores it, weft keeps segments as they were */
    if (memcmp(p + 38, q + 38, 2) != 0) return 0;
    if (memcmp(p + 40, q + 40, l4hdr - 20) != 0) return 0;         /* options (timestamps) */
  }
  return 1;
}

int weft_gro_plan(uint8_t *slab, const int32_t *offsets, const int32_t *lens, int count, int flags,
                  struct weft_gro_group *groups) {
  int ngroups = 0;
  int i = 0;
  while (i < count) {
    struct weft_gro_group *g = &groups[ngroups++];
    memset(g, 0, sizeof(*g));
    g->first = i;
    g->count = 1;
    uint8_t *p = slab + offsets[i];
    uint8_t proto;
    size_t l4hdr, seg;
    if (flags == 0 || !mergeable(p, lens[i], flags, &proto, &l4hdr, &seg)) {
      i++;
      continue;
    }
    size_t total = seg;
    size_t last = seg;
    uint32_t next_seq = proto == 6 ? weft_get32(p + 24) + (uint32_t)seg : 0;
    int pushed = proto == 6 && (p[33] & TCP_PSH);
    int j = i + 1;
    while (j < count && g->count < WEFT_GRO_MAX_SEGS && !pushed && last == seg) {
      const uint8_t *q = slab + offsets[j];
      uint8_t qproto;
      size_t ql4, qpay;
      if (!mergeable(q, lens[j], flags, &qproto, &ql4, &qpay) || qproto != proto) break;
      if (!same_flow(p, q, proto, l4hdr, g->count) || qpay > seg) break;
      if (20 + l4hdr + total + qpay > IP_MAX_LEN) break;
      if (proto == 6) {
        if (weft_get32(q + 24) != next_seq) break;
        next_seq += (uint32_t)qpay;
        pushed = (q[33] & TCP_PSH) != 0;
      }
      total += qpay;
      last = qpay;
      g->count++;
      j++;
    }
    if (g->count > 1) {
      /* rewrite the first packet's headers for the merged whole */
      size_t hdr = 20 + l4hdr;
      weft_put16(p + 2, (uint16_t)(hdr + total));
      weft_ipv4_set_csum(p);
      uint8_t *l4 = p + 20;
      uint16_t csum_offset;
      if (proto == 6) {
        if (pushed) l4[13] |= TCP_PSH;
        csum_offset = 16;
      } else {
        weft_put16(l4 + 4, (uint16_t)(8 + total));
        csum_offset = 6;
      }
      /* NEEDS_CSUM: the field holds the pseudo-header sum; the kernel finishes it */
      weft_put16(l4 + csum_offset, weft_csum_fold(weft_pseudo_sum(p, proto, (uint32_t)(l4hdr + total))));
      g->vnet.flags = WEFT_VNET_F_NEEDS_CSUM;
      g->vnet.gso_type = proto == 6 ? WEFT_VNET_GSO_TCPV4 : WEFT_VNET_GSO_UDP_L4;
      g->vnet.hdr_len = (uint16_t)hdr;
      g->vnet.gso_size = (uint16_t)seg;
      g->vnet.csum_start = 20;
      g->vnet.csum_offset = csum_offset;
      g->payload = (uint32_t)total;
    }
    i = j;
  }
  return ngroups;
}
