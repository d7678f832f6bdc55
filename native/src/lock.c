/*
 * An exclusive advisory lock on a file (flock): how one weft process holds
 * its state directory. The kernel drops the lock when its holder dies, even by
 * SIGKILL, so a restarted agent never waits for a dead one and two starting
 * agents can never both hold it. Node has no flock, hence this file; it is not
 * on the packet path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include "weft.h"

int weft_lock_file(const char *path) {
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return -errno;
  int rc;
  do {
    rc = flock(fd, LOCK_EX | LOCK_NB);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}
