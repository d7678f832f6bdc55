/*
 * weft-cni: weft's CNI plugin, a drop-in for flannel's (type "flannel").
 *
 * A runtime runs it once per container and operation, so it is a small
 * compiled program (starting Node.js alone costs more than the bridge
 * delegate's whole ADD; README "CNI plugin"). Flow of an ADD:
 *   1. the network config from stdin and the CNI_* environment are checked;
 *   2. subnet.env (the agent's lease) is read;
 *   3. the delegate config is rendered: bridge by default, isGateway, mtu and
 *      ipMasq from subnet.env, host-local IPAM over the lease with a route to
 *      the cluster network;
 *   4. it is saved in <dataDir>/<container ID> (0600, atomic and durable), so
 *      that DEL replays exactly what ADD used whatever subnet.env says later;
 *   5. the delegate from CNI_PATH runs; its result is ours.
 * Every failure is a CNI error (code, msg, details) on stdout, exit 1.
 */
#ifndef WEFT_CNI_H
#define WEFT_CNI_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define WEFT_CNI_PROGRAM "weft-cni"
#define WEFT_CNI_RELEASE "0.1.0"
/* install (src/cni/cni-install.ts) recognises weft's plugin by this text. */
#define WEFT_CNI_ABOUT "weft-cni CNI plugin " WEFT_CNI_RELEASE " (flannel-compatible; CNI spec 0.3.1, 0.4.0, 1.0.0, 1.1.0)"

#define DEFAULT_SUBNET_FILE "/run/flannel/subnet.env"
#define DEFAULT_DATA_DIR "/var/lib/cni/flannel"
#define DEFAULT_DELEGATE_TYPE "bridge"
/* Key of weft's own facts in a saved record; removed before the delegate sees the config. */
#define RECORD_ATTACHMENT_KEY "weftAttachment"

/* Bounds on what is read: a network config with prevResult, a delegate's result. */
#define MAX_STDIN_BYTES (16u << 20)
#define MAX_DELEGATE_OUTPUT_BYTES (16u << 20)
#define MAX_SUBNET_ENV_BYTES (64u << 10)
#define MAX_RECORD_BYTES (4u << 20)

/* Error codes of the CNI specification. */
enum cni_code {
  CNI_ERR_INCOMPATIBLE_VERSION = 1,
  CNI_ERR_UNSUPPORTED_FIELD = 2,
  CNI_ERR_UNKNOWN_CONTAINER = 3,
  CNI_ERR_INVALID_ENVIRONMENT = 4,
  CNI_ERR_IO = 5,
  CNI_ERR_DECODING = 6,
  CNI_ERR_INVALID_CONFIG = 7,
  CNI_ERR_TRY_AGAIN_LATER = 11,
  CNI_ERR_NOT_AVAILABLE = 50,
  CNI_ERR_INTERNAL = 999,
};

struct cni_error {
  int code;
  char msg[1024];
  char details[4096];
};

/* Fills err (printf-style message) and returns -1, so callers can `return cni_fail(...)`. */
int cni_fail(struct cni_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Sets err->details (printf-style). */
void cni_details(struct cni_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes err as CNI error JSON to stdout. */
void cni_error_print(const struct cni_error *err, const char *cni_version);

/* ---- versions (version.c) ---- */
#define CNI_LATEST_VERSION "1.1.0"
bool cni_version_supported(const char *version);
/* a >= b for dotted versions such as "0.4.0". */
bool cni_version_at_least(const char *a, const char *b);
/* The VERSION command's answer. */
json_t *cni_version_info(const char *requested);

/* ---- the environment (main.c) ---- */
struct cni_env {
  const char *command;
  const char *container_id;
  const char *netns;
  const char *ifname;
  const char *path;
};

/* ---- the network config on stdin (netconf.c) ---- */
struct netconf {
  json_t *root; /* owned */
  const char *cni_version;
  const char *name;
  const char *subnet_file;
  const char *data_dir;
  json_t *delegate;       /* borrowed from root; NULL when absent */
  json_t *ipam;           /* borrowed; NULL when absent */
  json_t *runtime_config; /* borrowed; NULL when absent */
  json_t *prev_result;    /* borrowed; NULL when absent */
};

int netconf_parse(const char *text, size_t len, struct netconf *nc, struct cni_error *err);
void netconf_free(struct netconf *nc);

/* ---- subnet.env (subnet_env.c) ---- */
#define SUBNET_ENV_MAX_NETWORKS 8
#define CIDR_TEXT_MAX 64
struct subnet_env {
  char networks[SUBNET_ENV_MAX_NETWORKS][CIDR_TEXT_MAX]; /* FLANNEL_NETWORK and FLANNEL_IPV6_NETWORK, masked */
  int network_count;
  char subnet4[CIDR_TEXT_MAX]; /* FLANNEL_SUBNET as a network ("" when absent) */
  char subnet6[CIDR_TEXT_MAX]; /* FLANNEL_IPV6_SUBNET as a network ("" when absent) */
  unsigned mtu;
  bool ipmasq;
};

/* ENOENT is CNI_ERR_TRY_AGAIN_LATER (the agent has not leased a subnet yet). */
int subnet_env_load(const char *path, struct subnet_env *env, struct cni_error *err);
int subnet_env_parse(const char *text, size_t len, const char *path, struct subnet_env *env, struct cni_error *err);
/* "10.1.2.3/24" -> "10.1.2.0/24" (or IPv6); returns the family, or -1 when text is not a CIDR. */
int cidr_network(const char *text, char *out, size_t out_len);

/* ---- the delegate's config (delegate.c) ---- */
/* Renders the delegate config for ADD as flannel's plugin does; NULL with err set on bad input. */
json_t *delegate_render(const struct netconf *nc, const struct subnet_env *env, struct cni_error *err);
/* The delegate's type after validation: a plain file name. */
int delegate_type(json_t *config, const char **type, struct cni_error *err);

/* ---- saved delegate configs (record.c) ---- */
int record_lock(const char *data_dir, bool exclusive, struct cni_error *err); /* returns an fd, held until exit */
int record_save(const char *data_dir, const char *container_id, json_t *record, struct cni_error *err);
/* 0 and *record = NULL when there is none. */
int record_load(const char *data_dir, const char *container_id, json_t **record, struct cni_error *err);
int record_remove(const char *data_dir, const char *container_id, struct cni_error *err);
/* The interface name weft saved with the record, or NULL (a record written by flannel's plugin). */
const char *record_ifname(json_t *record);
/* A copy of the record without weft's own key: what the delegate is given. */
json_t *record_delegate_config(json_t *record);
bool valid_container_id(const char *id);
bool valid_ifname(const char *name);

/* ---- running a delegate (invoke.c) ---- */
struct env_override {
  const char *name;
  const char *value; /* NULL: unset */
};

struct delegate_run {
  int exit_status; /* 0 on success; -1 killed by a signal */
  char *output;    /* stdout, NUL-terminated; free() it */
  size_t output_len;
};

int delegate_find(const char *type, const char *cni_path, char *path, size_t path_len, struct cni_error *err);
/* Runs `path` with CNI_COMMAND=command plus overrides and `config` on stdin. -1 only if it could not run. */
int delegate_exec(const char *path, const char *command, const struct env_override *overrides, size_t n_overrides,
                  json_t *config, struct delegate_run *run, struct cni_error *err);
/* Runs a delegate and turns any failure into err (the delegate's own CNI error code is kept). */
int delegate_call(const char *type, const char *cni_path, const char *command, const struct env_override *overrides,
                  size_t n_overrides, json_t *config, struct delegate_run *run, struct cni_error *err);

/* ---- the commands (commands.c) ---- */
int cmd_add(const struct cni_env *env, const struct netconf *nc, struct cni_error *err);
int cmd_del(const struct cni_env *env, const struct netconf *nc, struct cni_error *err);
int cmd_check(const struct cni_env *env, const struct netconf *nc, struct cni_error *err);
int cmd_status(const struct cni_env *env, const struct netconf *nc, struct cni_error *err);
int cmd_gc(const struct cni_env *env, const struct netconf *nc, struct cni_error *err);

/* ---- output (main.c) ---- */
/* Writes all of buf, retrying short writes and EINTR; -1 with errno on failure. */
int write_all(int fd, const char *buf, size_t len);

#endif
