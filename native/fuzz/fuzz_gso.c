/*
 * libFuzzer harness: weft_gso_split (gso.c) and the virtio-net header codec
 * (csum.c), on what a TUN read hands over: a 10-byte virtio_net_hdr, then the
 * packet. The first input byte picks max_segs (so the segment limit is hit
 * at small sizes too); the rest is the header and packet.
 *
 * Invariants, beyond "no crash": the header codec round-trips; the split
 * succeeds exactly when the reference (fuzz_ref.h) says the packet is
 * splittable, with as many segments; every segment has at most gso_size
 * payload bytes (all but the last exactly gso_size) and the payloads, in
 * order, are the input's payload; each header is the input's header with
 * only the fields a split must change changed (total length, id + k,
 * checksums, TCP sequence + k * gso_size, FIN/PSH only on the last, CWR only
 * on the first, UDP length); the IP and L4 checksums of every segment verify.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_ref.h"
#include "offload.h"

#define MAX_SEGS 128

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 + WEFT_VNET_HDR_LEN) return 0;
  int max_segs = 1 + data[0] % MAX_SEGS;
  data++;
  size--;
  struct weft_vnet_hdr h;
  weft_vnet_read(data, &h);
  uint8_t back[WEFT_VNET_HDR_LEN];
  weft_vnet_write(back, &h);
  WEFT_CHECK(memcmp(back, data, WEFT_VNET_HDR_LEN) == 0);
  WEFT_CHECK(h.gso_size == (uint16_t)(data[4] | data[5] << 8));

  /* the packet in a buffer of its own exact size: any read past it is an ASan report */
  size_t len = size - WEFT_VNET_HDR_LEN;
  uint8_t *pkt = malloc(len > 0 ? len : 1);
  memcpy(pkt, data + WEFT_VNET_HDR_LEN, len);
  uint8_t hdrs[MAX_SEGS * WEFT_SEG_HDR_MAX];
  struct weft_seg segs[MAX_SEGS];
  size_t ihl = 0, l4hdr = 0;
  int tcp = 0;
  int want = ref_gso_nsegs(pkt, len, &h, max_segs, &ihl, &l4hdr, &tcp);
  int n = weft_gso_split(pkt, len, &h, hdrs, segs, max_segs);
  WEFT_CHECK(n == want);
  if (n < 0) {
    free(pkt);
    return 0;
  }
  size_t hdr_len = ihl + l4hdr;
  size_t mss = h.gso_size;
  size_t payload = len - hdr_len;
  size_t at = 0;
  uint16_t id0 = ref_be16(pkt + 4);
  for (int k = 0; k < n; k++) {
    const struct weft_seg *s = &segs[k];
    int last = k == n - 1;
    WEFT_CHECK(s->hdr == hdrs + (size_t)k * WEFT_SEG_HDR_MAX);
    WEFT_CHECK(s->hdr_len == hdr_len);
    WEFT_CHECK(s->payload_len <= mss);
    WEFT_CHECK(last || s->payload_len == mss);
    WEFT_CHECK(s->payload == pkt + hdr_len + at); /* payloads concatenate back to the input's */
    at += s->payload_len;

    const uint8_t *hd = s->hdr;
    const uint8_t *l4 = hd + ihl;
    WEFT_CHECK(ref_be16(hd + 2) == hdr_len + s->payload_len);
    WEFT_CHECK(ref_be16(hd + 4) == (uint16_t)(id0 + k));
    WEFT_CHECK(ref_ip_csum_ok(hd));
    /* everything else of the IP header (options included) is the input's */
    WEFT_CHECK(memcmp(hd, pkt, 2) == 0 && memcmp(hd + 6, pkt + 6, 4) == 0 && memcmp(hd + 12, pkt + 12, ihl - 12) == 0);
    WEFT_CHECK(memcmp(l4, pkt + ihl, 4) == 0); /* ports */
    if (tcp) {
      WEFT_CHECK(ref_be32(l4 + 4) == (uint32_t)(ref_be32(pkt + ihl + 4) + (uint32_t)(k * mss)));
      uint8_t f = pkt[ihl + 13];
      if (!last) f &= (uint8_t)~0x09; /* FIN, PSH */
      if (k > 0) f &= (uint8_t)~0x80; /* CWR */
      WEFT_CHECK(l4[13] == f);
      WEFT_CHECK(memcmp(l4 + 8, pkt + ihl + 8, 5) == 0);             /* ACK, data offset */
      WEFT_CHECK(memcmp(l4 + 14, pkt + ihl + 14, 2) == 0);           /* window */
      WEFT_CHECK(memcmp(l4 + 18, pkt + ihl + 18, l4hdr - 18) == 0);  /* urgent pointer, options */
    } else {
      WEFT_CHECK(ref_be16(l4 + 4) == 8 + s->payload_len);
      WEFT_CHECK(ref_be16(l4 + 6) != 0); /* 0 would mean "no checksum" */
    }
    /* the L4 checksum over pseudo-header, segment header and payload */
    uint64_t sum = ref_pseudo(hd, tcp ? 6 : 17, (uint32_t)(l4hdr + s->payload_len)) + ref_words(l4, l4hdr);
    /* l4hdr is even (4-byte words, or 8), so the payload's words line up */
    sum += ref_words(s->payload, s->payload_len);
    WEFT_CHECK(ref_fold(sum) == 0xffff);
  }
  WEFT_CHECK(at == payload);
  free(pkt);
  return 0;
}
