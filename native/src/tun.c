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
