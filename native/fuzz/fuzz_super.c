/*
 * libFuzzer harness: what the workers do with a datagram from a peer's kernel
 * fast path before writing it to the TUN (tun.c): weft_super_vnet (one TCP
 * super-packet filling the datagram) and weft_partial_vnet (a single packet
 * whose TCP/UDP checksum holds the partial form). Both read bytes off the wire.
 *
 * Input: two bytes of MTU (big-endian), then the packet.
 *
 * Invariants: no read or write outside the packet; weft_super_vnet accepts
 * only an IPv4 TCP packet whose total length is the datagram's, not a
 * fragment, whose headers leave room in a segment of the MTU, and whose TCP
 * checksum was partial or right (reference sums); its header asks for
 * NEEDS_CSUM at the TCP checksum with segments of the MTU, changes at most
 * the checksum field, and finishing the checksum as the kernel would gives a
 * right one. weft_partial_vnet marks only TCP/UDP packets whose field is the
 * partial form, and finishing it gives a right checksum too.
 */
#define _GNU_SOURCE /* struct mmsghdr, in weft.h's scratch space */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_ref.h"
#include "weft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  int mtu = data[0] * 256 + data[1];
  size_t len = size - 2;
  uint8_t *pkt = malloc(len > 0 ? len : 1);
  uint8_t *orig = malloc(len > 0 ? len : 1);
  memcpy(pkt, data + 2, len);
  memcpy(orig, data + 2, len);
  uint8_t hdr[WEFT_VNET_HDR_LEN];

  if (mtu > 0 && weft_super_vnet(pkt, len, mtu, hdr) == 0) {
    struct weft_vnet_hdr v;
    weft_vnet_read(hdr, &v);
    size_t h = (size_t)(orig[0] & 15) * 4;
    size_t thl = (size_t)(orig[h + 12] >> 4) * 4;
    if (len < 40 || orig[0] >> 4 != 4 || orig[9] != 6 || ref_be16(orig + 2) != len || (ref_be16(orig + 6) & 0x3fff) != 0) abort();
    if (v.flags != WEFT_VNET_F_NEEDS_CSUM || (v.gso_type & 0x7f) != WEFT_VNET_GSO_TCPV4 || v.csum_start != h || v.csum_offset != 16 ||
        v.hdr_len != h + thl || v.gso_size + v.hdr_len != (size_t)mtu)
      abort();
    int was_right = ref_l4_csum_ok(orig, 6, orig + h, len - h);
    uint16_t partial = ref_fold(ref_pseudo(orig, 6, (uint32_t)(len - h)));
    if (!was_right && ref_be16(orig + h + 16) != partial) abort();
    for (size_t i = 0; i < len; i++) {
      if (i != h + 16 && i != h + 17 && pkt[i] != orig[i]) abort(); /* only the checksum field may change */
    }
    if (weft_csum_complete(pkt, len, v.csum_start, v.csum_offset) != 0 || !ref_l4_csum_ok(pkt, 6, pkt + h, len - h)) abort();
  } else if (memcmp(pkt, orig, len) != 0) {
    abort(); /* a refused packet is left as it was */
  }

  memcpy(pkt, orig, len);
  memset(hdr, 0xa5, sizeof(hdr));
  if (weft_partial_vnet(pkt, len, hdr)) {
    struct weft_vnet_hdr v;
    weft_vnet_read(hdr, &v);
    size_t h = (size_t)(orig[0] & 15) * 4;
    uint8_t proto = orig[9];
    if ((proto != 6 && proto != 17) || v.flags != WEFT_VNET_F_NEEDS_CSUM || v.gso_type != 0 || v.csum_start != h ||
        v.csum_offset != (proto == 6 ? 16 : 6))
      abort();
    if (ref_be16(orig + h + v.csum_offset) != ref_fold(ref_pseudo(orig, proto, (uint32_t)(len - h)))) abort();
    if (weft_csum_complete(pkt, len, v.csum_start, v.csum_offset) != 0 || !ref_l4_csum_ok(pkt, proto, pkt + h, len - h)) abort();
  }
  if (memcmp(pkt, orig, len) != 0 && !weft_partial_vnet(orig, len, hdr)) abort();

  free(pkt);
  free(orig);
  return 0;
}
