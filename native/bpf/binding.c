/*
 * N-API binding of the fast-path loader (weft_bpf.node): a separate addon,
 * so that the udp data plane's addon never depends on libbpf. Fast paths are
 * numbered handles (a small table); the calls are few and per route snapshot,
 * never per packet.
 *
 *   fpOpen(objectPath) -> handle
 *   fpAttachDecap(handle, ifindex, tcHandle, priority)
 *   fpAttachEncap(handle, tunIfindex, tcHandle, priority)
 *   fpConfigure(handle, settings: Uint32Array[9])   local, subnet, mask, cluster, mask, tun, underlay, port, flags
 *   fpSetRoutes(handle, nets: Uint32Array, lens: Uint8Array, peers: Uint32Array, ports: Uint16Array,
 *               flags: Uint8Array, count) -> changes
 *   fpCounters(handle, out: Float64Array)
 *   fpClose(handle)
 *   fpDetachIngress(ifindex, tcHandle, priority) -> 1 removed, 0 none there
 *   FP_COUNTERS
 * Errors are Error objects with code (errno name), syscall (what failed), errno
 * (native/napi/napi-helpers.h); bad arguments are RangeErrors (ERR_WEFT_NATIVE_ARG).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/libbpf.h>

#include "../napi/napi-helpers.h"
#include "fastpath.h"
#include "loader.h"

#define MAX_FAST_PATHS 16

struct fp_env {
  struct weft_fp *fps[MAX_FAST_PATHS];
};

static char last_libbpf_line[512];

/* libbpf's own messages: the last warning is kept for the error text (the verifier's reasons). */
static int on_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char line[512];
  vsnprintf(line, sizeof(line), fmt, args);
  size_t n = strlen(line);
  while (n > 0 && line[n - 1] == '\n') line[--n] = '\0';
  if (n > 0) memcpy(last_libbpf_line, line, n + 1);
  return 0;
}

/* Throws the failure, with libbpf's last warning (the verifier's reason) when there is one. */
static napi_value throw_err(napi_env env, const char *what, int err) {
  char detail[sizeof(last_libbpf_line) + 16] = "";
  if (last_libbpf_line[0] != '\0') snprintf(detail, sizeof(detail), "libbpf: %s", last_libbpf_line);
  last_libbpf_line[0] = '\0';
  return weft_throw_errno_detail(env, what, err, detail);
}

static struct fp_env *instance(napi_env env) {
  void *data = NULL;
  napi_get_instance_data(env, &data);
  return (struct fp_env *)data;
}

/* The fast path a handle names, or NULL (and a thrown RangeError). */
static struct weft_fp *lookup(napi_env env, napi_value v, uint32_t *slot) {
  uint32_t h;
  if (!get_u32(env, v, &h) || h >= MAX_FAST_PATHS || instance(env)->fps[h] == NULL) {
    throw_arg(env, "not an open fast path handle");
    return NULL;
  }
  if (slot != NULL) *slot = h;
  return instance(env)->fps[h];
}

static napi_value fp_open(napi_env env, napi_callback_info info) {
  char path[4096];
  size_t len;
  const char *what = "";
  GET_ARGS(1);
  if (napi_get_value_string_utf8(env, argv[0], path, sizeof(path), &len) != napi_ok || len >= sizeof(path) - 1)
    return throw_arg(env, "fpOpen(objectPath): a path expected");
  struct fp_env *e = instance(env);
  int slot = -1;
  for (int i = 0; i < MAX_FAST_PATHS; i++) {
    if (e->fps[i] == NULL) {
      slot = i;
      break;
    }
  }
  if (slot < 0) return throw_err(env, "fpOpen (too many fast paths open in this thread)", EMFILE);
  last_libbpf_line[0] = '\0';
  struct weft_fp *fp = NULL;
  int err = weft_fp_open(path, &fp, &what);
  if (err < 0) return throw_err(env, what, -err);
  e->fps[slot] = fp;
  return make_u32(env, (uint32_t)slot);
}

static napi_value fp_attach(napi_env env, napi_callback_info info, int encap) {
  uint32_t ifindex, handle, priority;
  const char *what = "";
  GET_ARGS(4);
  struct weft_fp *fp = lookup(env, argv[0], NULL);
  if (fp == NULL) return NULL;
  if (!get_u32(env, argv[1], &ifindex) || !get_u32(env, argv[2], &handle) || !get_u32(env, argv[3], &priority) ||
      ifindex == 0 || handle == 0 || priority == 0 || priority > 0xffff)
    return throw_arg(env, "fpAttach(handle, ifindex, tcHandle, priority): positive numbers expected (priority <= 65535)");
  last_libbpf_line[0] = '\0';
  int err = encap ? weft_fp_attach_encap(fp, (int)ifindex, handle, priority, &what)
                  : weft_fp_attach_decap(fp, (int)ifindex, handle, priority, &what);
  if (err < 0) return throw_err(env, what, -err);
  return NULL;
}

static napi_value fp_attach_decap(napi_env env, napi_callback_info info) {
  return fp_attach(env, info, 0);
}

static napi_value fp_attach_encap(napi_env env, napi_callback_info info) {
  return fp_attach(env, info, 1);
}

static napi_value fp_configure(napi_env env, napi_callback_info info) {
  size_t n;
  GET_ARGS(2);
  struct weft_fp *fp = lookup(env, argv[0], NULL);
  if (fp == NULL) return NULL;
  uint32_t *v = get_typed(env, argv[1], napi_uint32_array, &n);
  if (v == NULL || n < 9 || v[7] > 0xffff || v[8] > 0xffff)
    return throw_arg(env, "fpConfigure(handle, settings): a Uint32Array of 9 (port and flags <= 65535)");
  struct weft_fp_settings s = {
    .local_ip = v[0], .subnet = v[1], .subnet_mask = v[2], .cluster = v[3], .cluster_mask = v[4],
    .tun_ifindex = v[5], .underlay_ifindex = v[6], .port = (uint16_t)v[7], .flags = (uint16_t)v[8],
  };
  int err = weft_fp_configure(fp, &s);
  if (err < 0) return throw_err(env, "bpf_map_update_elem(config)", -err);
  return NULL;
}

static napi_value fp_set_routes(napi_env env, napi_callback_info info) {
  size_t n_nets, n_lens, n_peers, n_ports, n_flags;
  uint32_t count;
  const char *what = "";
  GET_ARGS(7);
  struct weft_fp *fp = lookup(env, argv[0], NULL);
  if (fp == NULL) return NULL;
  uint32_t *nets = get_typed(env, argv[1], napi_uint32_array, &n_nets);
  uint8_t *lens = get_typed(env, argv[2], napi_uint8_array, &n_lens);
  uint32_t *peers = get_typed(env, argv[3], napi_uint32_array, &n_peers);
  uint16_t *ports = get_typed(env, argv[4], napi_uint16_array, &n_ports);
  uint8_t *flags = get_typed(env, argv[5], napi_uint8_array, &n_flags);
  if (nets == NULL || lens == NULL || peers == NULL || ports == NULL || flags == NULL || !get_u32(env, argv[6], &count))
    return throw_arg(env, "fpSetRoutes(handle, nets: Uint32Array, lens: Uint8Array, peers: Uint32Array, ports: Uint16Array, flags: Uint8Array, count)");
  if (count > n_nets || count > n_lens || count > n_peers || count > n_ports || count > n_flags)
    return throw_arg(env, "fpSetRoutes: arrays shorter than count");
  for (uint32_t i = 0; i < count; i++) {
    if (lens[i] > 32) return throw_arg(env, "fpSetRoutes: a prefix length above 32");
  }
  int changed = 0;
  int err = weft_fp_set_routes(fp, nets, lens, peers, ports, flags, (int)count, &changed, &what);
  if (err < 0) return throw_err(env, what, -err);
  return make_u32(env, (uint32_t)changed);
}

static napi_value fp_counters(napi_env env, napi_callback_info info) {
  size_t n;
  GET_ARGS(2);
  struct weft_fp *fp = lookup(env, argv[0], NULL);
  if (fp == NULL) return NULL;
  double *out = get_typed(env, argv[1], napi_float64_array, &n);
  if (out == NULL) return throw_arg(env, "fpCounters(handle, out: Float64Array)");
  int err = weft_fp_counters(fp, out, n > WEFT_FP_COUNTERS ? WEFT_FP_COUNTERS : (int)n);
  if (err < 0) return throw_err(env, "bpf_map_lookup_elem(counters)", -err);
  return NULL;
}

static napi_value fp_close(napi_env env, napi_callback_info info) {
  uint32_t slot;
  GET_ARGS(1);
  struct weft_fp *fp = lookup(env, argv[0], &slot);
  if (fp == NULL) return NULL;
  instance(env)->fps[slot] = NULL;
  weft_fp_close(fp);
  return NULL;
}

static napi_value fp_detach_ingress(napi_env env, napi_callback_info info) {
  uint32_t ifindex, handle, priority;
  GET_ARGS(3);
  if (!get_u32(env, argv[0], &ifindex) || !get_u32(env, argv[1], &handle) || !get_u32(env, argv[2], &priority))
    return throw_arg(env, "fpDetachIngress(ifindex, tcHandle, priority): numbers expected");
  int r = weft_fp_detach_ingress((int)ifindex, handle, priority);
  if (r < 0) return throw_err(env, "bpf_tc_detach", -r);
  return make_u32(env, (uint32_t)r);
}

/* A thread's fast paths still open when it goes away are detached and freed. */
static void on_env_exit(napi_env env, void *data, void *hint) {
  struct fp_env *e = data;
  for (int i = 0; i < MAX_FAST_PATHS; i++) weft_fp_close(e->fps[i]);
  free(e);
}

NAPI_MODULE_INIT() {
  struct fp_env *e = calloc(1, sizeof(*e));
  if (e == NULL || napi_set_instance_data(env, e, on_env_exit, NULL) != napi_ok) return NULL;
  libbpf_set_print(on_libbpf_print);
  napi_property_descriptor props[] = {
      {"fpOpen", NULL, fp_open, NULL, NULL, NULL, napi_default, NULL},
      {"fpAttachDecap", NULL, fp_attach_decap, NULL, NULL, NULL, napi_default, NULL},
      {"fpAttachEncap", NULL, fp_attach_encap, NULL, NULL, NULL, napi_default, NULL},
      {"fpConfigure", NULL, fp_configure, NULL, NULL, NULL, napi_default, NULL},
      {"fpSetRoutes", NULL, fp_set_routes, NULL, NULL, NULL, napi_default, NULL},
      {"fpCounters", NULL, fp_counters, NULL, NULL, NULL, napi_default, NULL},
      {"fpClose", NULL, fp_close, NULL, NULL, NULL, napi_default, NULL},
      {"fpDetachIngress", NULL, fp_detach_ingress, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  napi_set_named_property(env, exports, "FP_COUNTERS", make_u32(env, WEFT_FP_COUNTERS));
  return exports;
}
