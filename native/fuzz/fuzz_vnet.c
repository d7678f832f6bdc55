/*
 * libFuzzer harness: the send path of packets read from a TUN with a
 * virtio-net header, weft_udp_send_vnet_batch (udp.c): header parsing,
 * partial checksum completion, splitting, grouping into UDP_SEGMENT messages
 * and batch flushes. The socket is fd -1, so every sendmmsg fails at once
 * with EBADF: no datagram leaves this machine, and each message shows up as
 * one system call and its datagrams as failed.
 *
 * Input: a flags byte (bit 0: WEFT_SEND_GSO, bit 1: WEFT_SEND_PACK_RUNS), then records [repeat][len hi][len lo]
 * [len bytes]: the packet (vnet header first), repeat % 16 + 1 times (so
 * batches reach the 1024-message and 8192-header limits).
 *
 * Invariants: nothing is reported sent; each packet is malformed exactly
 * when the reference says so (too short, NEEDS_CSUM offsets outside it, or
 * not splittable); the failed count is the reference's datagram count; one
 * system call per message, where a UDP_SEGMENT message holds at most 64
 * datagrams and 65000 bytes; a completed checksum verifies; super-packets'
 * bytes are not touched.
 */
#define _GNU_SOURCE /* struct mmsghdr, in weft.h's scratch space */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_ref.h"
#include "weft.h"

#define MAX_PKTS 512

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int flags = data[0] & (WEFT_SEND_GSO | WEFT_SEND_PACK_RUNS);
  int use_gso = flags & WEFT_SEND_GSO;
  size_t at = 1;
  size_t total = 0;
  int count = 0;
  /* first pass: sizes */
  for (size_t i = at; i + 3 <= size && count < MAX_PKTS;) {
    size_t len = (size_t)(data[i + 1] << 8 | data[i + 2]);
    if (len > size - i - 3) len = size - i - 3;
    int rep = data[i] % 16 + 1;
    for (int r = 0; r < rep && count < MAX_PKTS; r++, count++) total += len;
    i += 3 + len;
  }
  if (count == 0) return 0;
  uint8_t *slab = malloc(total > 0 ? total : 1);
  uint8_t *orig = malloc(total > 0 ? total : 1);
  int32_t *offsets = malloc(sizeof(int32_t) * (size_t)count);
  int32_t *lens = malloc(sizeof(int32_t) * (size_t)count);
  uint32_t *addrs = calloc((size_t)count, sizeof(uint32_t));
  uint16_t *ports = calloc((size_t)count, sizeof(uint16_t));
  size_t used = 0;
  int n = 0;
  for (size_t i = at; i + 3 <= size && n < count;) {
    size_t len = (size_t)(data[i + 1] << 8 | data[i + 2]);
    if (len > size - i - 3) len = size - i - 3;
    int rep = data[i] % 16 + 1;
    for (int r = 0; r < rep && n < count; r++, n++) {
      memcpy(slab + used, data + i + 3, len);
      offsets[n] = (int32_t)used;
      lens[n] = (int32_t)len;
      used += len;
    }
    i += 3 + len;
  }
  memcpy(orig, slab, total);

  /* what the reference expects */
  uint32_t want_malformed = 0, want_datagrams = 0, want_msgs = 0;
  static uint32_t want_per[MAX_PKTS]; /* datagrams each input packet becomes */
  for (int i = 0; i < count; i++) {
    want_per[i] = 0;
    const uint8_t *p = orig + offsets[i];
    size_t len = (size_t)lens[i];
    if (len < WEFT_VNET_HDR_LEN + 20) {
      want_malformed++;
      continue;
    }
    struct weft_vnet_hdr h;
    weft_vnet_read(p, &h);
    const uint8_t *pkt = p + WEFT_VNET_HDR_LEN;
    size_t plen = len - WEFT_VNET_HDR_LEN;
    if ((h.gso_type & ~WEFT_VNET_GSO_ECN) == WEFT_VNET_GSO_NONE) {
      if ((h.flags & WEFT_VNET_F_NEEDS_CSUM) && ((size_t)h.csum_start + h.csum_offset + 2 > plen || (h.csum_start & 1))) {
        want_malformed++;
        continue;
      }
      want_datagrams++;
      want_per[i] = 1;
      want_msgs++;
      continue;
    }
    size_t ihl, l4hdr;
    int tcp;
    int segs = ref_gso_nsegs(pkt, plen, &h, WEFT_GSO_MAX_SEGS, &ihl, &l4hdr, &tcp);
    if (segs < 0) {
      want_malformed++;
      continue;
    }
    want_datagrams += (uint32_t)segs;
    want_per[i] = (uint32_t)segs;
    /* UDP_SEGMENT: equal datagrams (but the last), at most 64 and 65000 bytes a message */
    size_t payload = plen - ihl - l4hdr;
    size_t wire = ihl + l4hdr + (payload < h.gso_size ? payload : h.gso_size);
    size_t per_msg = 1;
    if (use_gso && segs > 1) {
      per_msg = WEFT_UDP_GSO_MAX_BYTES / wire;
      if (per_msg > WEFT_UDP_GSO_MAX_SEGS) per_msg = WEFT_UDP_GSO_MAX_SEGS;
      if (per_msg < 1) per_msg = 1;
    }
    want_msgs += (uint32_t)(((size_t)segs + per_msg - 1) / per_msg);
  }

  /* one scratch area for the process, as a worker thread keeps one: 1.9 MB allocated (and
     poisoned, and quarantined) per input would cost more than the code under test */
  static struct weft_scratch *s;
  if (s == NULL) s = malloc(sizeof(*s));
  struct weft_io io = {0, 0, 0, 0, 0, 0};
  static int32_t per[WEFT_SEND_RESULT_FIELDS * MAX_PKTS];
  int sent = weft_udp_send_vnet_batch(-1, slab, offsets, lens, addrs, ports, count, flags, per, s, &io);
  WEFT_CHECK(sent == 0 && io.units == 0 && io.bytes == 0);
  WEFT_CHECK(io.malformed == want_malformed);
  WEFT_CHECK(io.failed == want_datagrams);
  /* packed runs merge whole packets into fewer messages (one failed sendmmsg each): never more */
  if (flags & WEFT_SEND_PACK_RUNS) WEFT_CHECK(io.syscalls <= want_msgs && (want_msgs == 0) == (io.syscalls == 0));
  else WEFT_CHECK(io.syscalls == want_msgs);
  WEFT_CHECK(want_datagrams == 0 || io.last_errno == EBADF);
  /* per-packet results: every datagram of packet i refused, none sent */
  for (int i = 0; i < count; i++) {
    WEFT_CHECK(per[3 * i] == 0 && per[3 * i + 1] == 0);
    WEFT_CHECK(per[3 * i + 2] == (int32_t)want_per[i]);
  }

  /* completed checksums verify; nothing else was written */
  for (int i = 0; i < count; i++) {
    const uint8_t *p = slab + offsets[i];
    const uint8_t *o = orig + offsets[i];
    size_t len = (size_t)lens[i];
    if (len >= WEFT_VNET_HDR_LEN + 20 && (o[1] & ~WEFT_VNET_GSO_ECN) == WEFT_VNET_GSO_NONE &&
        (o[0] & WEFT_VNET_F_NEEDS_CSUM)) {
      struct weft_vnet_hdr h;
      weft_vnet_read(o, &h);
      size_t plen = len - WEFT_VNET_HDR_LEN;
      size_t field = (size_t)h.csum_start + h.csum_offset;
      if (field + 2 <= plen && !(h.csum_start & 1)) {
        const uint8_t *pkt = p + WEFT_VNET_HDR_LEN;
        uint16_t before = ref_be16(o + WEFT_VNET_HDR_LEN + field);
        uint16_t c = (uint16_t)~ref_sum(o + WEFT_VNET_HDR_LEN + h.csum_start, plen - h.csum_start);
        WEFT_CHECK(ref_be16(pkt + field) == (c == 0 ? 0xffff : c));
        if ((h.csum_offset & 1) == 0)
          WEFT_CHECK(ref_fold((uint64_t)ref_sum(pkt + h.csum_start, plen - h.csum_start) + before) == 0xffff);
        WEFT_CHECK(memcmp(p, o, WEFT_VNET_HDR_LEN + field) == 0);
        WEFT_CHECK(memcmp(pkt + field + 2, o + WEFT_VNET_HDR_LEN + field + 2, plen - field - 2) == 0);
        continue;
      }
    }
    WEFT_CHECK(memcmp(p, o, len) == 0);
  }
  free(ports);
  free(addrs);
  free(lens);
  free(offsets);
  free(orig);
  free(slab);
  return 0;
}
