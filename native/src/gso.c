/* Splitting TCP/UDP super-packets into wire-sized IPv4 packets. See offload.h. */
#include "offload.h"

#include <string.h>

#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_CWR 0x80

int weft_gso_split(const uint8_t *pkt, size_t len, const struct weft_vnet_hdr *h,
                   uint8_t *hdr_area, struct weft_seg *segs, int max_segs) {
  if (len < 20 || (pkt[0] >> 4) != 4) return -1;
  size_t ihl = (size_t)(pkt[0] & 15) * 4;
  if (ihl < 20 || ihl > len) return -1;
  if ((weft_get16(pkt + 6) & 0x3fff) != 0) return -1; /* a fragment cannot be a super-packet */
  uint8_t proto = pkt[9];
  int kind = h->gso_type & ~WEFT_VNET_GSO_ECN;
  if (kind != WEFT_VNET_GSO_TCPV4 && kind != WEFT_VNET_GSO_UDP_L4) return -1;
  int tcp = kind == WEFT_VNET_GSO_TCPV4;
  if (tcp ? proto != 6 : proto != 17) return -1;
  size_t l4hdr;
  if (tcp) {
    if (ihl + 20 > len) return -1;
    l4hdr = (size_t)(pkt[ihl + 12] >> 4) * 4; /* hdr_len from the kernel is not trusted */
    if (l4hdr < 20) return -1;
  } else {
    l4hdr = 8;
  }
  size_t hdr_len = ihl + l4hdr;
  if (hdr_len > len || hdr_len > WEFT_SEG_HDR_MAX) return -1;
  size_t payload = len - hdr_len;
  size_t mss = h->gso_size;
  if (mss == 0) return -1;
  size_t nseg = payload == 0 ? 1 : (payload + mss - 1) / mss;
  if (nseg > (size_t)max_segs) return -1;

  uint16_t id = weft_get16(pkt + 4);
  uint32_t seq = tcp ? weft_get32(pkt + ihl + 4) : 0;
  uint8_t flags = tcp ? pkt[ihl + 13] : 0;
  for (size_t k = 0; k < nseg; k++) {
    uint8_t *hd = hdr_area + k * WEFT_SEG_HDR_MAX;
    size_t off = k * mss;
    size_t plen = payload - off < mss ? payload - off : mss;
    const uint8_t *pl = pkt + hdr_len + off;
    memcpy(hd, pkt, hdr_len);
    weft_put16(hd + 2, (uint16_t)(hdr_len + plen));
    weft_put16(hd + 4, (uint16_t)(id + k));
    weft_ipv4_set_csum(hd);
    uint8_t *l4 = hd + ihl;
    uint32_t l4len = (uint32_t)(l4hdr + plen);
    if (tcp) {
      weft_put32(l4 + 4, seq + (uint32_t)off);
      uint8_t f = flags;
      if (k + 1 < nseg) f &= (uint8_t)~(TCP_FIN | TCP_PSH);
      if (k > 0) f &= (uint8_t)~TCP_CWR;
      l4[13] = f;
      l4[16] = 0;
      l4[17] = 0;
      uint64_t sum = weft_pseudo_sum(hd, 6, l4len);
      sum = weft_csum_add(l4, l4hdr, sum);
      sum = weft_csum_add(pl, plen, sum);
      weft_put16(l4 + 16, (uint16_t)~weft_csum_fold(sum));
    } else {
      weft_put16(l4 + 4, (uint16_t)l4len);
      l4[6] = 0;
      l4[7] = 0;
      uint64_t sum = weft_pseudo_sum(hd, 17, l4len);
      sum = weft_csum_add(l4, 8, sum);
      sum = weft_csum_add(pl, plen, sum);
      uint16_t c = (uint16_t)~weft_csum_fold(sum);
      weft_put16(l4 + 6, c == 0 ? 0xffff : c);
    }
    segs[k].hdr = hd;
    segs[k].hdr_len = (uint16_t)hdr_len;
    segs[k].payload = pl;
    segs[k].payload_len = (uint32_t)plen;
  }
  return (int)nseg;
}
