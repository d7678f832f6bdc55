/*
 * libFuzzer harness: GRO coalescing (gro.c): weft_gro_plan and the merged
 * writes built from its plan, as weft_tun_write_packets sends them to a TUN.
 *
 * Random bytes almost never form a run of same-flow TCP segments with right
 * checksums, so the input is a little program that builds packets (see
 * build_packet): raw bytes, a fresh TCP/UDP header from input fields, the
 * next segment of the previous packet's flow, or a duplicate; optionally one
 * byte flipped; IP length/checksum and L4 checksum fixed up unless the input
 * says not to. The first byte is the GRO flags.
 *
 * Invariants, beyond "no crash":
 *  - the groups cover the packets in order, 1..64 each; packets of a group
 *    of one are left untouched;
 *  - every packet of a merged group is one the rules allow: IPv4 without
 *    options, right length and header checksum, no fragment and no IP flag
 *    but DF, valid L4 checksum (or UDP without),
 *    TCP flags ACK or ACK|PSH (never URG), PSH only last, same flow and
 *    same once-only fields (TOS, TTL, DF, ports, ACK, window, urgent
 *    pointer, options), adjacent sequence numbers, all but the last of
 *    gso_size bytes, IP ids + 1 per packet without DF;
 *  - the merged write (vnet header + rewritten first packet + the others'
 *    payloads) is at most 65535 bytes with a right IP header, its vnet
 *    header describes it, completing its NEEDS_CSUM checksum gives one that
 *    verifies, and splitting it again (weft_gso_split, what the kernel does)
 *    gives back the original packets' payloads and headers (except a DF
 *    packet's id and the checksums, which are checked for validity).
 */
#include <sanitizer/asan_interface.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_ref.h"
#include "offload.h"

#define MAX_PKTS 160
#define MAX_PKT 1600
/* Poisoned bytes between packets in the slab: a read past a packet's end is an ASan report. */
#define GAP 16

struct cursor {
  const uint8_t *p;
  size_t n;
};

static uint8_t take8(struct cursor *c) {
  if (c->n == 0) return 0;
  c->n--;
  return *c->p++;
}
static uint16_t take16(struct cursor *c) { return (uint16_t)(take8(c) << 8 | take8(c)); }
static uint32_t take32(struct cursor *c) { return (uint32_t)take16(c) << 16 | take16(c); }

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static void put32(uint8_t *p, uint32_t v) {
  put16(p, (uint16_t)(v >> 16));
  put16(p + 2, (uint16_t)v);
}

/* Header length (IP + L4) of a packet this harness built as TCP/UDP, or 0. */
static size_t built_hdr(const uint8_t *p, size_t len) {
  if (len < 28 || p[0] != 0x45) return 0;
  if (p[9] == 17) return 28;
  if (p[9] == 6 && len >= 40 && (size_t)(p[32] >> 4) * 4 >= 20 && 20 + (size_t)(p[32] >> 4) * 4 <= len)
    return 20 + (size_t)(p[32] >> 4) * 4;
  return 0;
}

/* Fixes the IP total length and header checksum, and the L4 checksum, as `ctl` asks. */
static void fix_up(uint8_t *p, size_t len, uint8_t ctl) {
  if (len < 20) return;
  size_t ihl = (size_t)(p[0] & 15) * 4;
  if (ihl < 20 || ihl > len) return;
  if (!(ctl & 0x20)) {
    put16(p + 2, (uint16_t)len);
    if (p[9] == 17 && ihl + 8 <= len) put16(p + ihl + 4, (uint16_t)(len - ihl));
  }
  if (!(ctl & 0x40)) {
    size_t field = p[9] == 6 ? 16 : p[9] == 17 ? 6 : 0;
    if (field != 0 && ihl + field + 2 <= len) {
      put16(p + ihl + field, 0);
      if (!(p[9] == 17 && (ctl & 0x80))) { /* UDP may go without a checksum */
        uint16_t c = (uint16_t)~ref_fold(ref_pseudo(p, p[9], (uint32_t)(len - ihl)) + ref_words(p + ihl, len - ihl));
        put16(p + ihl + field, p[9] == 17 && c == 0 ? 0xffff : c);
      }
    }
  }
  if (!(ctl & 0x20)) {
    put16(p + 10, 0);
    put16(p + 10, (uint16_t)~ref_sum(p, ihl));
  }
}

/* Builds packet k at `out` from the input; returns its length. */
static size_t build_packet(struct cursor *c, uint8_t *out, const uint8_t *prev, size_t prev_len, int k) {
  uint8_t ctl = take8(c);
  size_t len = 0;
  size_t prev_hdr = prev != NULL ? built_hdr(prev, prev_len) : 0;
  int kind = ctl & 3;
  if (kind == 1 && prev_hdr == 0) kind = 2;
  if (kind == 3 && prev == NULL) kind = 0;
  switch (kind) {
    case 0: /* raw bytes */
      len = take16(c) % (MAX_PKT + 1);
      for (size_t i = 0; i < len; i++) out[i] = take8(c);
      break;
    case 1: { /* the next segment of the previous packet's flow */
      size_t prev_pay = prev_len - prev_hdr;
      size_t pay = (ctl & 0x04) ? prev_pay : 1 + take16(c) % 1500;
      memcpy(out, prev, prev_hdr);
      put16(out + 4, (ctl & 0x08) ? take16(c) : (uint16_t)(ref_be16(prev + 4) + 1));
      if (prev[9] == 6) put32(out + 24, ref_be32(prev + 24) + (uint32_t)prev_pay);
      len = prev_hdr + pay;
      break;
    }
    case 2: { /* a fresh header */
      int udp = (ctl & 0x04) != 0;
      memset(out, 0, 60);
      out[0] = 0x45;
      out[1] = take8(c);                  /* TOS */
      put16(out + 4, take16(c));          /* id */
      out[6] = (ctl & 0x08) ? 0x40 : 0;   /* DF (other flag bits: the 0x10 flip) */
      out[8] = take8(c);                  /* TTL */
      out[9] = udp ? 17 : 6;
      put32(out + 12, take32(c));
      put32(out + 16, take32(c));
      put16(out + 20, take16(c));
      put16(out + 22, take16(c));
      size_t hdr = 28;
      if (!udp) {
        size_t doff = 5 + take8(c) % 11;
        put32(out + 24, take32(c));       /* seq */
        put32(out + 28, take32(c));       /* ack */
        out[32] = (uint8_t)(doff << 4);
        out[33] = take8(c);               /* flags: the fuzzer finds ACK and ACK|PSH */
        put16(out + 34, take16(c));       /* window */
        put16(out + 38, take8(c) < 16 ? take16(c) : 0); /* mostly no urgent pointer */
        for (size_t i = 40; i < 20 + doff * 4; i++) out[i] = take8(c);
        hdr = 20 + doff * 4;
      }
      len = hdr + 1 + take16(c) % 1500;
      break;
    }
    default: /* a duplicate */
      memcpy(out, prev, prev_len);
      len = prev_len;
      break;
  }
  if (kind == 1 || kind == 2) {
    /* distinct payload bytes per packet, so that reordered or lost bytes show */
    size_t hdr = built_hdr(out, len);
    if (hdr == 0) hdr = len < 20 ? len : 20;
    for (size_t i = hdr; i < len; i++) out[i] = (uint8_t)(k * 31 + i);
  }
  if ((ctl & 0x10) && len > 0) {
    size_t at = take16(c) % len;
    out[at] ^= take8(c) | 1;
  }
  if (kind != 3) fix_up(out, len, ctl);
  return len;
}

/* Checks one merged group against the original packets (before the plan rewrote the first). */
static void check_merged(uint8_t *slab, const uint8_t *orig, const int32_t *offsets, const int32_t *lens,
                         const struct weft_gro_group *g, int flags) {
  const uint8_t *p0 = orig + offsets[g->first];
  uint8_t proto = p0[9];
  int tcp = proto == 6;
  WEFT_CHECK(tcp ? (flags & WEFT_GRO_TCP) : proto == 17 && (flags & WEFT_GRO_UDP));
  WEFT_CHECK(g->count >= 2 && g->count <= WEFT_GRO_MAX_SEGS);
  size_t l4hdr = tcp ? (size_t)(p0[32] >> 4) * 4 : 8;
  size_t hdr = 20 + l4hdr;
  size_t seg = (size_t)lens[g->first] - hdr;
  const struct weft_vnet_hdr *v = &g->vnet;
  WEFT_CHECK(v->flags == WEFT_VNET_F_NEEDS_CSUM);
  WEFT_CHECK(v->gso_type == (tcp ? WEFT_VNET_GSO_TCPV4 : WEFT_VNET_GSO_UDP_L4));
  WEFT_CHECK(v->hdr_len == hdr && v->gso_size == seg && v->csum_start == 20 && v->csum_offset == (tcp ? 16 : 6));

  /* each packet is one the rules let merge */
  size_t total = 0;
  uint32_t seq = tcp ? ref_be32(p0 + 24) : 0;
  for (int k = 0; k < g->count; k++) {
    const uint8_t *q = orig + offsets[g->first + k];
    size_t qlen = (size_t)lens[g->first + k];
    int last = k == g->count - 1;
    WEFT_CHECK(qlen > hdr && q[0] == 0x45 && ref_be16(q + 2) == qlen);
    WEFT_CHECK(ref_ip_csum_ok(q)); /* Linux's GRO does not merge a bad IP header either */
    WEFT_CHECK((q[6] & ~0x40) == 0 && q[7] == 0); /* no fragment, no flag but DF */
    WEFT_CHECK(q[9] == proto && q[1] == p0[1] && q[8] == p0[8] && (q[6] & 0x40) == (p0[6] & 0x40));
    WEFT_CHECK(memcmp(q + 12, p0 + 12, 12) == 0); /* addresses, ports */
    WEFT_CHECK((p0[6] & 0x40) || ref_be16(q + 4) == (uint16_t)(ref_be16(p0 + 4) + k));
    size_t pay = qlen - hdr;
    WEFT_CHECK(pay <= seg && (last || pay == seg));
    if (tcp) {
      WEFT_CHECK(q[32] == p0[32] && (q[32] & 0x0f) == 0);        /* data offset, no NS/AE */
      WEFT_CHECK(q[33] == 0x10 || (q[33] == 0x18 && last));    /* ACK, or ACK|PSH last */
      WEFT_CHECK(ref_be32(q + 24) == seq);
      WEFT_CHECK(memcmp(q + 28, p0 + 28, 4) == 0 && memcmp(q + 34, p0 + 34, 2) == 0);
      WEFT_CHECK(memcmp(q + 38, p0 + 38, 2 + l4hdr - 20) == 0); /* urgent pointer, options */
      WEFT_CHECK(ref_l4_csum_ok(q, 6, q + 20, qlen - 20));
      seq += (uint32_t)pay;
    } else {
      WEFT_CHECK(ref_be16(q + 24) == qlen - 20);
      WEFT_CHECK(ref_be16(q + 26) == 0 || ref_l4_csum_ok(q, 17, q + 20, qlen - 20));
    }
    total += pay;
  }
  WEFT_CHECK(g->payload == total && hdr + total <= 65535);

  /* the write: rewritten first packet, then the others' payloads */
  size_t mlen = hdr + total;
  uint8_t *m = malloc(mlen);
  memcpy(m, slab + offsets[g->first], (size_t)lens[g->first]);
  size_t at = (size_t)lens[g->first];
  for (int k = 1; k < g->count; k++) {
    memcpy(m + at, slab + offsets[g->first + k] + hdr, (size_t)lens[g->first + k] - hdr);
    at += (size_t)lens[g->first + k] - hdr;
  }
  WEFT_CHECK(at == mlen);
  WEFT_CHECK(ref_be16(m + 2) == mlen && ref_ip_csum_ok(m));
  WEFT_CHECK(memcmp(m, p0, 2) == 0 && memcmp(m + 4, p0 + 4, 6) == 0 && memcmp(m + 12, p0 + 12, 8) == 0);
  if (!tcp) WEFT_CHECK(ref_be16(m + 24) == mlen - 20);

  /* the kernel completes the checksum from the pseudo-header sum in the field */
  uint8_t *full = malloc(mlen);
  memcpy(full, m, mlen);
  WEFT_CHECK(weft_csum_complete(full, mlen, v->csum_start, v->csum_offset) == 0);
  WEFT_CHECK(ref_l4_csum_ok(full, proto, full + 20, mlen - 20));
  free(full);

  /* and segments it again: the original packets come back */
  uint8_t hdrs[WEFT_GRO_MAX_SEGS * WEFT_SEG_HDR_MAX];
  struct weft_seg segs[WEFT_GRO_MAX_SEGS];
  int n = weft_gso_split(m, mlen, v, hdrs, segs, WEFT_GRO_MAX_SEGS);
  WEFT_CHECK(n == g->count);
  for (int k = 0; k < n; k++) {
    const uint8_t *q = orig + offsets[g->first + k];
    size_t qlen = (size_t)lens[g->first + k];
    const uint8_t *s = segs[k].hdr;
    WEFT_CHECK(segs[k].hdr_len == hdr && hdr + segs[k].payload_len == qlen);
    WEFT_CHECK(memcmp(segs[k].payload, q + hdr, qlen - hdr) == 0);
    WEFT_CHECK(memcmp(s, q, 4) == 0 && memcmp(s + 6, q + 6, 4) == 0 && memcmp(s + 12, q + 12, 8) == 0);
    WEFT_CHECK((q[6] & 0x40) || memcmp(s + 4, q + 4, 2) == 0); /* without DF the id survives */
    size_t field = tcp ? 16 : 6;
    WEFT_CHECK(memcmp(s + 20, q + 20, field) == 0 && memcmp(s + 22 + field, q + 22 + field, l4hdr - field - 2) == 0);
  }
  free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int flags = data[0] & (WEFT_GRO_TCP | WEFT_GRO_UDP);
  struct cursor c = {data + 1, size - 1};
  /* packets are built one after another here, then copied into a slab of just their size */
  uint8_t built[MAX_PKTS * MAX_PKT];
  size_t at[MAX_PKTS];
  int32_t offsets[MAX_PKTS], lens[MAX_PKTS];
  int count = 0;
  size_t end = 0, slab_size = 0;
  while (c.n > 0 && count < MAX_PKTS) {
    const uint8_t *prev = count > 0 ? built + at[count - 1] : NULL;
    size_t prev_len = count > 0 ? (size_t)lens[count - 1] : 0;
    size_t len = build_packet(&c, built + end, prev, prev_len, count);
    at[count] = end;
    lens[count] = (int32_t)len;
    offsets[count] = (int32_t)slab_size;
    end += len;
    slab_size = ((slab_size + len + 7) & ~(size_t)7) + GAP;
    count++;
  }
  uint8_t *slab = malloc(slab_size > 0 ? slab_size : 1);
  for (int i = 0; i < count; i++) {
    memcpy(slab + offsets[i], built + at[i], (size_t)lens[i]);
    size_t next = i + 1 < count ? (size_t)offsets[i + 1] : slab_size;
    ASAN_POISON_MEMORY_REGION(slab + offsets[i] + lens[i], next - (size_t)offsets[i] - (size_t)lens[i]);
  }
  uint8_t *orig = malloc(slab_size > 0 ? slab_size : 1);
  for (int i = 0; i < count; i++) memcpy(orig + offsets[i], built + at[i], (size_t)lens[i]);

  struct weft_gro_group groups[MAX_PKTS];
  int ngroups = weft_gro_plan(slab, offsets, lens, count, flags, groups);
  WEFT_CHECK(ngroups >= (count > 0 ? 1 : 0) && ngroups <= count);
  int next = 0;
  for (int i = 0; i < ngroups; i++) {
    const struct weft_gro_group *g = &groups[i];
    WEFT_CHECK(g->first == next && g->count >= 1 && g->count <= WEFT_GRO_MAX_SEGS);
    next += g->count;
    WEFT_CHECK(next <= count);
    if (g->count == 1) {
      WEFT_CHECK(memcmp(slab + offsets[g->first], orig + offsets[g->first], (size_t)lens[g->first]) == 0);
    } else {
      WEFT_CHECK(flags != 0);
      check_merged(slab, orig, offsets, lens, g, flags);
    }
  }
  WEFT_CHECK(next == count);
  free(orig);
  ASAN_UNPOISON_MEMORY_REGION(slab, slab_size > 0 ? slab_size : 1);
  free(slab);
  return 0;
}
