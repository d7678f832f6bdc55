/* TUN device: open, offloads, batch read and write. See weft.h. */
#define _GNU_SOURCE
#include "weft.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

int weft_tun_open(const char *name, int flags, char *out_name, const char **failed_call) {
  struct ifreq ifr;
  int fd, err;

  if (strlen(name) >= IFNAMSIZ) {
    *failed_call = "open";
    return -ENAMETOOLONG;
  }
  fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    *failed_call = "open";
    return -errno;
  }
  memset(&ifr, 0, sizeof(ifr));
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  if (flags & WEFT_TUN_VNET_HDR) ifr.ifr_flags |= IFF_VNET_HDR;
  if (flags & WEFT_TUN_MULTI_QUEUE) ifr.ifr_flags |= IFF_MULTI_QUEUE;
  memcpy(ifr.ifr_name, name, strlen(name));
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    err = errno;
    close(fd);
    *failed_call = "ioctl(TUNSETIFF)";
    return -err;
  }
  memcpy(out_name, ifr.ifr_name, IFNAMSIZ);
  out_name[IFNAMSIZ - 1] = '\0';
  return fd;
}

int weft_tun_set_offload(int fd, unsigned int offload_flags) {
  if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)offload_flags) < 0) return -errno;
  return 0;
}

int weft_tun_read_batch(int fd, uint8_t *slab, size_t slot_size, int max,
                        int32_t *lens, int32_t *offsets, struct weft_io *io) {
  int n = 0, refused = 0;
  size_t at = 0; /* dense mode: where the next packet goes */
  uint8_t spill; /* one byte past the slot: a packet that reaches it did not fit */
  while (n < max) {
    uint8_t *dst = offsets != NULL ? slab + at : slab + (size_t)n * slot_size;
    struct iovec iov[2] = {{dst, slot_size}, {&spill, 1}};
    ssize_t r = readv(fd, iov, 2);
    io->syscalls++;
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      /* the device is gone: the caller must know */
      if (errno == EBADF || errno == EBADFD || errno == EIO) {
        if (n == 0) return -errno;
        io->last_errno = errno;
        break;
      }
      /* a packet the kernel could not hand over (e.g. EINVAL for its offload type): it is lost, go on */
      io->failed++;
      io->last_errno = errno;
      if (++refused >= max) break;
      continue;
    }
    if ((size_t)r > slot_size) {
      lens[n] = -1; /* truncated: its bytes are garbage, and its room is reused */
    } else {
      lens[n] = (int32_t)r;
      if (offsets != NULL) at += ((size_t)r + 63) & ~(size_t)63;
    }
    if (offsets != NULL) offsets[n] = (int32_t)(dst - slab);
    n++;
  }
  return n;
}

int weft_tun_write_batch(int fd, const uint8_t *slab, const int32_t *offsets,
                         const int32_t *lens, int count, struct weft_io *io) {
  int written = 0;
  for (int i = 0; i < count; i++) {
    ssize_t r;
    do {
      r = write(fd, slab + offsets[i], (size_t)lens[i]);
      io->syscalls++;
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
      io->failed++;
      io->last_errno = errno;
      continue;
    }
    io->bytes += (uint32_t)r;
    written++;
  }
  return written;
}

static const uint8_t zero_vnet[WEFT_VNET_HDR_LEN];

int weft_partial_vnet(const uint8_t *pkt, size_t len, uint8_t *hdr) {
  if (len < 20 || (pkt[0] >> 4) != 4) return 0;
  size_t h = (size_t)(pkt[0] & 0x0f) * 4;
  if (h < 20 || h + 8 > len || (weft_get16(pkt + 6) & 0x3fff) != 0) return 0; /* short, or a fragment */
  uint8_t proto = pkt[9];
  uint16_t at;
  if (proto == 6 && h + 20 <= len) at = 16;
  else if (proto == 17) at = 6;
  else return 0;
  uint16_t field = weft_get16(pkt + h + at);
  if (proto == 17 && field == 0) return 0; /* UDP without a checksum */
  if (field != weft_csum_fold(weft_pseudo_sum(pkt, proto, (uint32_t)(len - h)))) return 0;
  /* the kernel's sum over the data from csum_start, seeded with this field, is the right checksum either way */
  struct weft_vnet_hdr v = {.flags = WEFT_VNET_F_NEEDS_CSUM, .csum_start = (uint16_t)h, .csum_offset = at};
  weft_vnet_write(hdr, &v);
  return 1;
}

int weft_tun_write_packets(int fd, uint8_t *slab, const int32_t *offsets, const int32_t *lens,
                           int count, int vnet, int gro_flags, struct weft_scratch *s,
                           struct weft_io *io) {
  if (!vnet) return weft_tun_write_batch(fd, slab, offsets, lens, count, io);
  if (count > WEFT_MAX_WRITE) {
    io->failed += (uint32_t)(count - WEFT_MAX_WRITE); /* callers stay below it; never silently */
    count = WEFT_MAX_WRITE;
  }
  int ngroups = weft_gro_plan(slab, offsets, lens, count, gro_flags, s->groups);
  uint8_t hdr[WEFT_VNET_HDR_LEN];
  int written = 0;
  for (int g = 0; g < ngroups; g++) {
    const struct weft_gro_group *grp = &s->groups[g];
    int first = grp->first;
    struct iovec *iov = s->iov;
    int niov = 0;
    if (grp->count > 1) {
      weft_vnet_write(hdr, &grp->vnet);
      iov[niov].iov_base = hdr;
    } else if (weft_partial_vnet(slab + offsets[first], (size_t)lens[first], hdr)) {
      iov[niov].iov_base = hdr; /* a checksum a fast-path peer's kernel left partial: the kernel finishes it */
    } else {
      iov[niov].iov_base = (void *)zero_vnet;
    }
    iov[niov++].iov_len = WEFT_VNET_HDR_LEN;
    iov[niov].iov_base = slab + offsets[first];
    iov[niov++].iov_len = (size_t)lens[first];
    for (int k = 1; k < grp->count; k++) {
      int j = first + k;
      iov[niov].iov_base = slab + offsets[j] + grp->vnet.hdr_len;
      iov[niov++].iov_len = (size_t)lens[j] - grp->vnet.hdr_len;
    }
    ssize_t r;
    do {
      r = writev(fd, iov, niov);
      io->syscalls++;
    } while (r < 0 && errno == EINTR);
    io->units++;
    if (r < 0) {
      io->failed += (uint32_t)grp->count;
      io->last_errno = errno;
      continue;
    }
    io->bytes += (uint32_t)(r - WEFT_VNET_HDR_LEN);
    written += grp->count;
  }
  return written;
}

int weft_super_vnet(uint8_t *pkt, size_t len, int mtu, uint8_t *hdr) {
  if (len < 40 || len > 65535 || (pkt[0] >> 4) != 4 || pkt[9] != 6 /* TCP */) return -1;
  size_t h = (size_t)(pkt[0] & 0x0f) * 4;
  if (h < 20 || weft_get16(pkt + 2) != len || (weft_get16(pkt + 6) & 0x3fff) != 0) return -1;
  uint8_t *tcp = pkt + h;
  size_t thl = h + 13 <= len ? (size_t)(tcp[12] >> 4) * 4 : 0;
  if (thl < 20 || h + thl >= len || (size_t)mtu <= h + thl) return -1;
  uint32_t tcp_len = (uint32_t)(len - h);
  uint64_t pseudo = weft_pseudo_sum(pkt, 6, tcp_len);
  uint16_t partial = weft_csum_fold(pseudo);
  if (weft_get16(tcp + 16) != partial) {
    /* not the partial form: accept a complete, right checksum and put it in that form */
    if (weft_csum_fold(weft_csum_add(tcp, tcp_len, pseudo)) != 0xffff) return -1;
    weft_put16(tcp + 16, partial);
  }
  struct weft_vnet_hdr v = {
      .flags = WEFT_VNET_F_NEEDS_CSUM,
      .gso_type = (uint8_t)(WEFT_VNET_GSO_TCPV4 | ((tcp[13] & 0x80) ? WEFT_VNET_GSO_ECN : 0)), /* CWR set: ECN */
      .hdr_len = (uint16_t)(h + thl),
      .gso_size = (uint16_t)((size_t)mtu - h - thl),
      .csum_start = (uint16_t)h,
      .csum_offset = 16,
  };
  weft_vnet_write(hdr, &v);
  return 0;
}

int weft_tun_write_super(int fd, uint8_t *pkt, size_t len, int mtu, struct weft_io *io) {
  uint8_t hdr[WEFT_VNET_HDR_LEN];
  if (weft_super_vnet(pkt, len, mtu, hdr) < 0) {
    io->malformed++;
    return 0;
  }
  struct iovec iov[2] = {{hdr, sizeof(hdr)}, {pkt, len}};
  ssize_t r;
  do {
    r = writev(fd, iov, 2);
    io->syscalls++;
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    int err = errno;
    io->failed++;
    io->last_errno = err;
    return -err;
  }
  io->bytes += (uint32_t)len;
  io->units++;
  return 1;
}
