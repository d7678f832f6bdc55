/*
 * libFuzzer harness: the Internet checksum code of csum.c against the plain
 * reference sum of fuzz_ref.h (big-endian words, end-around carry). Any
 * difference aborts.
 *
 * Input: 4 control bytes (a split point, csum_start and csum_offset for
 * weft_csum_complete), then the data.
 *  - weft_csum_add + weft_csum_fold over the data equals the reference sum,
 *    also when the data is summed in two calls split at an even offset (how
 *    headers and segment payloads are chained), and from an odd start address;
 *  - weft_csum_complete refuses exactly the offsets that do not fit (or an
 *    odd csum_start), and otherwise stores the complemented reference sum
 *    from csum_start (0 as 0xffff), like the kernel's skb_checksum_help; with
 *    a word-aligned field that checksum verifies: the reference sum from
 *    csum_start, plus the value the field held before (the pseudo-header sum
 *    NEEDS_CSUM leaves there), is 0xffff;
 *  - weft_ipv4_set_csum writes a header checksum that verifies, and
 *    weft_pseudo_sum equals the reference pseudo-header sum.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_ref.h"
#include "offload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4) return 0;
  size_t split = (size_t)(data[0] | data[1] << 8);
  uint16_t start = data[2];
  uint16_t offset = data[3];
  data += 4;
  size -= 4;
  /* one spare byte in front: the same data also sits at an odd address */
  uint8_t *buf = malloc(size + 1);
  uint8_t *p = buf + 1;
  memcpy(p, data, size);

  uint16_t want = ref_sum(p, size);
  WEFT_CHECK(weft_csum_fold(weft_csum_add(p, size, 0)) == want);
  WEFT_CHECK(weft_csum_fold(weft_csum_add(data, size, 0)) == want);
  split = size == 0 ? 0 : (split % (size + 1)) & ~(size_t)1;
  WEFT_CHECK(weft_csum_fold(weft_csum_add(p + split, size - split, weft_csum_add(p, split, 0))) == want);

  /* weft_csum_complete, as the send path uses it on a NEEDS_CSUM packet */
  int fits = (size_t)start + offset + 2 <= size && (start & 1) == 0;
  uint16_t before = fits ? ref_be16(p + start + offset) : 0;
  int r = weft_csum_complete(p, size, start, offset);
  WEFT_CHECK(r == (fits ? 0 : -1));
  if (fits) {
    /* the field holds the complemented sum from csum_start as it was (0 sent as 0xffff) */
    uint16_t c = (uint16_t)~ref_sum(data + start, size - start);
    WEFT_CHECK(ref_be16(p + start + offset) == (c == 0 ? 0xffff : c));
    /* and, where the field is word-aligned from csum_start (TCP 16, UDP 6), the sum verifies */
    if ((offset & 1) == 0) WEFT_CHECK(ref_fold((uint64_t)ref_sum(p + start, size - start) + before) == 0xffff);
    WEFT_CHECK(memcmp(p, data, start + offset) == 0 && memcmp(p + start + offset + 2, data + start + offset + 2, size - start - offset - 2) == 0);
  } else {
    WEFT_CHECK(memcmp(p, data, size) == 0);
  }

  /* an IPv4 header of the length its first byte says, when the data holds one */
  memcpy(p, data, size);
  if (size >= 20 && (size_t)(p[0] & 15) * 4 >= 20 && (size_t)(p[0] & 15) * 4 <= size) {
    weft_ipv4_set_csum(p);
    WEFT_CHECK(ref_ip_csum_ok(p));
    WEFT_CHECK(memcmp(p, data, 10) == 0 && memcmp(p + 12, data + 12, (size_t)(p[0] & 15) * 4 - 12) == 0);
    uint32_t l4len = (uint32_t)(size > 22 ? ref_be16(data + 20) : size);
    WEFT_CHECK(weft_csum_fold(weft_pseudo_sum(p, p[9], l4len)) == ref_fold(ref_pseudo(p, p[9], l4len)));
  }
  free(buf);
  return 0;
}
