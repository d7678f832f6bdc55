/*
 * Saved delegate configs: <dataDir>/<container ID> holds the delegate config
 * an ADD rendered (flannel's plugin keeps the same file, so either plugin can
 * DEL what the other added), plus weft's "weftAttachment": {"ifname": ...}
 * that GC needs and the delegate never sees. Files are 0600 in a 0700
 * directory, replaced atomically (temp file, fsync, rename, fsync of the
 * directory). ADD, DEL and CHECK hold a shared lock on <dataDir>/.weft-cni.lock
 * and GC an exclusive one, so GC never removes a record an ADD is writing.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cni.h"

#define LOCK_NAME ".weft-cni.lock"

bool valid_container_id(const char *id) {
  size_t n = strlen(id);
  if (n == 0 || n > NAME_MAX - 16 || !isalnum((unsigned char)id[0])) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)id[i];
    if (!isalnum(c) && c != '_' && c != '.' && c != '-') return false;
  }
  return true;
}

bool valid_ifname(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > 15 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)name[i];
    if (c == '/' || c == ':' || c <= 0x20 || c >= 0x7f) return false; /* printable ASCII, as runtimes name interfaces */
  }
  return true;
}

static int sync_dir(const char *dir, struct cni_error *err) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return cni_fail(err, CNI_ERR_IO, "cannot open %s: %s", dir, strerror(errno));
  int rc = fsync(fd);
  int e = errno;
  close(fd);
  if (rc < 0 && e != EINVAL) return cni_fail(err, CNI_ERR_IO, "cannot sync %s: %s", dir, strerror(e));
  return 0;
}

static int mkdir_all(const char *dir, struct cni_error *err) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path)) {
    return cni_fail(err, CNI_ERR_INVALID_CONFIG, "dataDir %s is too long", dir);
  }
  for (char *p = path + 1;; p++) {
    if (*p != '/' && *p != '\0') continue;
    char saved = *p;
    *p = '\0';
    if (mkdir(path, 0700) == 0) {
      /* make the new directory's entry durable in its parent */
      char *slash = strrchr(path, '/');
      char parent[PATH_MAX];
      snprintf(parent, sizeof(parent), "%.*s", slash == path ? 1 : (int)(slash - path), path);
      if (sync_dir(parent, err) < 0) return -1;
    } else if (errno != EEXIST) {
      return cni_fail(err, CNI_ERR_IO, "cannot create the data directory %s: %s", path, strerror(errno));
    }
    *p = saved;
    if (saved == '\0') break;
  }
  return 0;
}

int record_lock(const char *data_dir, bool exclusive, struct cni_error *err) {
  if (mkdir_all(data_dir, err) < 0) return -1;
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "%s/%s", data_dir, LOCK_NAME);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return cni_fail(err, CNI_ERR_IO, "cannot open the lock file %s: %s", path, strerror(errno));
  while (flock(fd, exclusive ? LOCK_EX : LOCK_SH) < 0) {
    if (errno == EINTR) continue;
    int e = errno;
    close(fd);
    return cni_fail(err, CNI_ERR_IO, "cannot lock %s: %s", path, strerror(e));
  }
  return fd;
}

int record_save(const char *data_dir, const char *container_id, json_t *record, struct cni_error *err) {
  char path[PATH_MAX], tmp[PATH_MAX];
  snprintf(path, sizeof(path), "%s/%s", data_dir, container_id);
  snprintf(tmp, sizeof(tmp), "%s/.%s.%ld.tmp", data_dir, container_id, (long)getpid());
  char *text = json_dumps(record, JSON_COMPACT);
  if (text == NULL) return cni_fail(err, CNI_ERR_INTERNAL, "cannot serialise the delegate config");
  unlink(tmp); /* a leftover of a process with the same PID: never write through it */
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    int e = errno;
    free(text);
    return cni_fail(err, CNI_ERR_IO, "cannot create %s: %s", tmp, strerror(e));
  }
  int rc = fchmod(fd, 0600) == 0 && write_all(fd, text, strlen(text)) == 0 && fsync(fd) == 0 ? 0 : -1;
  int e = errno;
  free(text);
  if (close(fd) < 0 && rc == 0) {
    rc = -1;
    e = errno;
  }
  if (rc == 0 && rename(tmp, path) < 0) {
    rc = -1;
    e = errno;
  }
  if (rc < 0) {
    unlink(tmp);
    return cni_fail(err, CNI_ERR_IO, "cannot save the delegate config in %s: %s", path, strerror(e));
  }
  return sync_dir(data_dir, err);
}

int record_load(const char *data_dir, const char *container_id, json_t **record, struct cni_error *err) {
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "%s/%s", data_dir, container_id);
  *record = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return 0;
    return cni_fail(err, CNI_ERR_IO, "cannot open the saved delegate config %s: %s", path, strerror(errno));
  }
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return cni_fail(err, CNI_ERR_DECODING, "the saved delegate config %s is not a regular file", path);
  }
  FILE *f = fdopen(fd, "r");
  if (f == NULL) {
    close(fd);
    return cni_fail(err, CNI_ERR_INTERNAL, "out of memory");
  }
  if ((size_t)st.st_size > MAX_RECORD_BYTES) {
    fclose(f);
    return cni_fail(err, CNI_ERR_DECODING, "the saved delegate config %s is larger than %u bytes", path, MAX_RECORD_BYTES);
  }
  json_error_t jerr;
  json_t *root = json_loadf(f, 0, &jerr);
  fclose(f);
  if (root == NULL || !json_is_object(root)) {
    if (root != NULL) json_decref(root);
    return cni_fail(err, CNI_ERR_DECODING, "the saved delegate config %s is not a JSON object: %s", path,
                    root == NULL ? jerr.text : "another JSON value");
  }
  *record = root;
  return 0;
}

int record_remove(const char *data_dir, const char *container_id, struct cni_error *err) {
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "%s/%s", data_dir, container_id);
  if (unlink(path) < 0 && errno != ENOENT) {
    return cni_fail(err, CNI_ERR_IO, "cannot remove the saved delegate config %s: %s", path, strerror(errno));
  }
  return sync_dir(data_dir, err);
}

const char *record_ifname(json_t *record) {
  json_t *a = json_object_get(record, RECORD_ATTACHMENT_KEY);
  json_t *name = json_is_object(a) ? json_object_get(a, "ifname") : NULL;
  return json_is_string(name) ? json_string_value(name) : NULL;
}

json_t *record_delegate_config(json_t *record) {
  json_t *copy = json_deep_copy(record);
  json_object_del(copy, RECORD_ATTACHMENT_KEY);
  return copy;
}
