/* ADD, DEL, CHECK, STATUS and GC: what each does with subnet.env, the saved records and the delegate. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cni.h"

/* A temp file older than this was left by a process that died mid-write; GC removes it. */
#define STALE_TEMP_SECONDS 600
/* an interface name (at most 15 bytes) and its NUL */
#define IF_NAME_BYTES 16

static int print_json_bytes(const char *text, size_t len) {
  if (write_all(STDOUT_FILENO, text, len) < 0) return -1;
  return len > 0 && text[len - 1] != '\n' ? write_all(STDOUT_FILENO, "\n", 1) : 0;
}

/* Best effort: undo a failed ADD so that nothing is left behind. */
static void undo_add(const struct cni_env *env, const struct netconf *nc, const char *type, json_t *config,
                     struct cni_error *err) {
  struct cni_error undo_err;
  struct delegate_run run;
  if (delegate_call(type, env->path, "DEL", NULL, 0, config, &run, &undo_err) == 0) {
    free(run.output);
    struct cni_error ignored;
    record_remove(nc->data_dir, env->container_id, &ignored);
    return;
  }
  /* keep the record: the runtime's DEL after this failed ADD can still release what the delegate made */
  char earlier[sizeof(err->details)];
  snprintf(earlier, sizeof(earlier), "%s", err->details);
  cni_details(err, "%s%sthe delegate's DEL after the failed ADD failed too (%s); the runtime's DEL will retry it",
              earlier, earlier[0] != '\0' ? "; " : "", undo_err.msg);
}

/* Puts an earlier ADD's record back after a repeated ADD failed. */
static void restore_record(const struct netconf *nc, const char *container_id, json_t *earlier) {
  struct cni_error ignored;
  if (record_save(nc->data_dir, container_id, earlier, &ignored) < 0) {
    fprintf(stderr, "weft-cni: cannot restore the saved config of container %s: %s\n", container_id, ignored.msg);
  }
}

int cmd_add(const struct cni_env *env, const struct netconf *nc, struct cni_error *err) {
  struct subnet_env senv;
  if (subnet_env_load(nc->subnet_file, &senv, err) < 0) return -1;
  json_t *config = delegate_render(nc, &senv, err);
  if (config == NULL) return -1;
  const char *type;
  char path[PATH_MAX];
  int rc = -1;
  json_t *record = NULL;
  json_t *existing = NULL;
  if (delegate_type(config, &type, err) < 0 || delegate_find(type, env->path, path, sizeof(path), err) < 0) goto out;
  if (record_lock(nc->data_dir, false, err) < 0) goto out;

  /* an earlier ADD of this attachment that was never deleted: a failure now must not undo it, and
   * its record is put back so that DEL still replays what that ADD did */
  struct cni_error load_err;
  if (record_load(nc->data_dir, env->container_id, &existing, &load_err) == 0 && existing != NULL) {
    const char *other = record_ifname(existing);
    if (other != NULL && strcmp(other, env->ifname) != 0) {
      cni_fail(err, CNI_ERR_INVALID_CONFIG,
               "container %s is already attached to network %s as %s: one attachment per container and network "
               "(DEL it first)",
               env->container_id, nc->name, other);
      goto out;
    }
  }
  bool repeated = existing != NULL;

  record = json_deep_copy(config);
  json_object_set_new(record, RECORD_ATTACHMENT_KEY, json_pack("{s:s}", "ifname", env->ifname));
  if (record_save(nc->data_dir, env->container_id, record, err) < 0) goto out;

  struct delegate_run run;
  if (delegate_call(type, env->path, "ADD", NULL, 0, config, &run, err) < 0) {
    if (!repeated) undo_add(env, nc, type, config, err);
    else restore_record(nc, env->container_id, existing);
    goto out;
  }
  json_t *result = json_loadb(run.output, run.output_len, 0, NULL);
  bool ok = json_is_object(result);
  if (result != NULL) json_decref(result);
  if (!ok) {
    cni_fail(err, CNI_ERR_DECODING, "delegate plugin %s ADD succeeded but printed no JSON result", type);
    cni_details(err, "%.2000s", run.output);
    free(run.output);
    if (!repeated) undo_add(env, nc, type, config, err);
    else restore_record(nc, env->container_id, existing);
    goto out;
  }
  rc = print_json_bytes(run.output, run.output_len);
  free(run.output);
out:
  if (existing != NULL) json_decref(existing);
  if (record != NULL) json_decref(record);
  json_decref(config);
  return rc;
}

/* The record for this attachment, or NULL: none saved, or saved for another interface of the container. */
static int load_attachment(const struct cni_env *env, const struct netconf *nc, json_t **record, struct cni_error *err) {
  if (record_load(nc->data_dir, env->container_id, record, err) < 0) return -1;
  if (*record == NULL) return 0;
  const char *ifname = record_ifname(*record);
  if (ifname != NULL && strcmp(ifname, env->ifname) != 0) {
    json_decref(*record);
    *record = NULL;
  }
  return 0;
}

int cmd_del(const struct cni_env *env, const struct netconf *nc, struct cni_error *err) {
  struct stat st;
  if (stat(nc->data_dir, &st) < 0 && errno == ENOENT) return 0; /* nothing was ever added here */
  if (record_lock(nc->data_dir, false, err) < 0) return -1;
  json_t *record;
  if (load_attachment(env, nc, &record, err) < 0) {
    if (err->code != CNI_ERR_DECODING) return -1;
    /* a damaged record cannot be replayed; say so and let the runtime go on */
    fprintf(stderr, "weft-cni: DEL %s: %s; nothing to replay\n", env->container_id, err->msg);
    return 0;
  }
  if (record == NULL) return 0; /* DEL is idempotent: already deleted, or never added */
  json_t *config = record_delegate_config(record);
  json_decref(record);
  const char *type;
  struct delegate_run run;
  int rc = -1;
  if (delegate_type(config, &type, err) == 0 && delegate_call(type, env->path, "DEL", NULL, 0, config, &run, err) == 0) {
    free(run.output);
    rc = record_remove(nc->data_dir, env->container_id, err);
  }
  json_decref(config);
  return rc;
}

/* The first range's subnet of a saved config's IPAM ("" when there is none). */
static const char *saved_subnet(json_t *config) {
  json_t *ranges = json_object_get(json_object_get(config, "ipam"), "ranges");
  json_t *subnet = json_object_get(json_array_get(json_array_get(ranges, 0), 0), "subnet");
  return json_is_string(subnet) ? json_string_value(subnet) : "";
}

int cmd_check(const struct cni_env *env, const struct netconf *nc, struct cni_error *err) {
  if (nc->prev_result == NULL) {
    return cni_fail(err, CNI_ERR_INVALID_CONFIG, "CHECK needs \"prevResult\": the result of the ADD being checked");
  }
  struct stat st;
  bool have_dir = stat(nc->data_dir, &st) == 0;
  if (have_dir && record_lock(nc->data_dir, false, err) < 0) return -1;
  json_t *record = NULL;
  if (have_dir && load_attachment(env, nc, &record, err) < 0) return -1;
  if (record == NULL) {
    return cni_fail(err, CNI_ERR_UNKNOWN_CONTAINER,
                    "container %s has no attachment %s on network %s here: it was never added, or was deleted "
                    "(no saved config in %s)",
                    env->container_id, env->ifname, nc->name != NULL ? nc->name : "(unnamed)", nc->data_dir);
  }
  json_t *config = record_delegate_config(record);
  json_decref(record);
  int rc = -1;
  struct subnet_env senv;
  struct cni_error env_err;
  if (subnet_env_load(nc->subnet_file, &senv, &env_err) == 0 && senv.subnet4[0] != '\0' &&
      strcmp(saved_subnet(config), senv.subnet4) != 0) {
    /* the host's lease changed: the container's address is no longer routed to this host */
    cni_fail(err, CNI_ERR_INVALID_CONFIG,
             "container %s has an address in %s, but this host's lease is now %s (%s): re-create the container",
             env->container_id, saved_subnet(config), senv.subnet4, nc->subnet_file);
    goto out;
  }
  json_object_set(config, "prevResult", nc->prev_result);
  json_object_set_new(config, "cniVersion", json_string(nc->cni_version));
  const char *type;
  struct delegate_run run;
  if (delegate_type(config, &type, err) == 0 && delegate_call(type, env->path, "CHECK", NULL, 0, config, &run, err) == 0) {
    free(run.output);
    rc = 0;
  }
out:
  json_decref(config);
  return rc;
}

int cmd_status(const struct cni_env *env, const struct netconf *nc, struct cni_error *err) {
  struct subnet_env senv;
  if (subnet_env_load(nc->subnet_file, &senv, err) < 0) {
    err->code = CNI_ERR_NOT_AVAILABLE;
    return -1;
  }
  const char *type = DEFAULT_DELEGATE_TYPE;
  if (nc->delegate != NULL && json_object_get(nc->delegate, "type") != NULL &&
      delegate_type(nc->delegate, &type, err) < 0) {
    return -1; /* a config error, as ADD would report it */
  }
  char path[PATH_MAX];
  if (delegate_find(type, env->path, path, sizeof(path), err) < 0) {
    err->code = CNI_ERR_NOT_AVAILABLE;
    return -1;
  }
  return 0;
}

/* Is (id, ifname) in cni.dev/valid-attachments? A record without an ifname matches on the ID alone. */
static bool attachment_valid(json_t *valid, const char *id, const char *ifname) {
  size_t i;
  json_t *a;
  json_array_foreach(valid, i, a) {
    json_t *cid = json_object_get(a, "containerID");
    json_t *ifn = json_object_get(a, "ifname");
    if (!json_is_string(cid) || strcmp(json_string_value(cid), id) != 0) continue;
    if (ifname == NULL || !json_is_string(ifn) || strcmp(json_string_value(ifn), ifname) == 0) return true;
  }
  return false;
}

/* Replays the DEL of one stale attachment; 0 when released. */
static int collect_one(const struct cni_env *env, const struct netconf *nc, const char *id, struct cni_error *err) {
  json_t *record;
  if (record_load(nc->data_dir, id, &record, err) < 0) return -1;
  if (record == NULL) return 0; /* removed meanwhile */
  /* copied: the record is released before the delegate runs */
  char ifname[IF_NAME_BYTES] = "eth0";
  const char *saved = record_ifname(record);
  if (saved != NULL && valid_ifname(saved)) snprintf(ifname, sizeof(ifname), "%s", saved);
  struct env_override ov[] = {
      {"CNI_CONTAINERID", id},
      {"CNI_IFNAME", ifname},
      {"CNI_NETNS", NULL},
      {"CNI_ARGS", NULL},
  };
  json_t *config = record_delegate_config(record);
  json_decref(record);
  const char *type;
  struct delegate_run run;
  int rc = -1;
  if (delegate_type(config, &type, err) == 0 &&
      delegate_call(type, env->path, "DEL", ov, sizeof(ov) / sizeof(ov[0]), config, &run, err) == 0) {
    free(run.output);
    rc = record_remove(nc->data_dir, id, err);
  }
  json_decref(config);
  return rc;
}

int cmd_gc(const struct cni_env *env, const struct netconf *nc, struct cni_error *err) {
  json_t *valid = json_object_get(nc->root, "cni.dev/valid-attachments");
  if (!json_is_array(valid)) {
    return cni_fail(err, CNI_ERR_INVALID_CONFIG, "GC needs \"cni.dev/valid-attachments\": a list of {containerID, ifname}");
  }
  DIR *dir = opendir(nc->data_dir);
  if (dir == NULL) {
    if (errno == ENOENT) return 0;
    return cni_fail(err, CNI_ERR_IO, "cannot read the data directory %s: %s", nc->data_dir, strerror(errno));
  }
  int lock = record_lock(nc->data_dir, true, err);
  if (lock < 0) {
    closedir(dir);
    return -1;
  }
  int released = 0, failed = 0;
  char failures[2048] = "";
  time_t now = time(NULL);
  struct dirent *de;
  while ((de = readdir(dir)) != NULL) {
    const char *name = de->d_name;
    struct stat st;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", nc->data_dir, name);
    if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode)) continue;
    size_t n = strlen(name);
    if (name[0] == '.') {
      /* a temp file of a process that died while saving */
      if (n > 4 && strcmp(name + n - 4, ".tmp") == 0 && now - st.st_mtime > STALE_TEMP_SECONDS) unlink(path);
      continue;
    }
    if (!valid_container_id(name)) continue;
    json_t *record = NULL;
    struct cni_error one = {0};
    if (record_load(nc->data_dir, name, &record, &one) < 0 || record == NULL) continue;
    /* the data dir may hold other networks' records (flannel's default one is shared): not ours to judge */
    json_t *net = json_object_get(record, "name");
    bool other_network = nc->name != NULL && json_is_string(net) && strcmp(json_string_value(net), nc->name) != 0;
    bool keep = other_network || attachment_valid(valid, name, record_ifname(record));
    json_decref(record);
    if (keep) continue;
    if (collect_one(env, nc, name, &one) == 0) {
      released++;
    } else {
      failed++;
      size_t used = strlen(failures);
      snprintf(failures + used, sizeof(failures) - used, "%s%s: %s", used > 0 ? "; " : "", name, one.msg);
    }
  }
  closedir(dir);
  if (failed > 0) {
    cni_fail(err, CNI_ERR_INTERNAL, "GC released %d stale attachments but could not release %d (their records are kept)",
             released, failed);
    cni_details(err, "%s", failures);
    return -1;
  }
  return 0;
}
