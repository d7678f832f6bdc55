/*
 * N-API glue for weft's data plane. Validates and bounds-checks arguments,
 * then calls the pure C in tun.c / udp.c. No packet logic lives here.
 *
 * Each JavaScript environment (main thread or worker) gets its own
 * instance data: the batch scratch space and its readiness watchers.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <poll.h>
#include <time.h>

#include "weft.h"
#include "../napi/napi-helpers.h"

struct weft_poll;

struct weft_env {
  struct weft_scratch scratch;
  struct weft_poll *polls; /* live readiness watchers, for teardown */
  /* Watchers whose uv_close has not called back yet, however they were stopped (pollStop,
     a failed pollStart, teardown): each close callback still reads this struct, so the
     environment must not free it while any is pending. */
  int closing_polls;
  /* Set while teardown waits for those closes; removing it lets Node free this struct. */
  napi_async_cleanup_hook_handle cleanup;
};

struct weft_poll_token;

struct weft_poll {
  uv_poll_t handle;
  napi_env env;
  napi_ref callback;
  napi_async_context async;
  struct weft_env *owner;
  struct weft_poll *next;
  struct weft_poll_token *token;
  int stopped;
};

/* What a JS handle points at: outlives the watcher, so a stale handle is harmless. */
struct weft_poll_token {
  struct weft_poll *poll; /* NULL once stopped */
};

static void stop_poll(struct weft_poll *p);
static void close_poll(struct weft_poll *p);

/* errors and argument helpers: native/napi/napi-helpers.h */

static struct weft_env *instance(napi_env env) {
  void *data = NULL;
  napi_get_instance_data(env, &data);
  return (struct weft_env *)data;
}

static void report_io(uint32_t *io_out, const struct weft_io *io) {
  io_out[0] = io->syscalls;
  io_out[1] = io->failed;
  io_out[2] = (uint32_t)io->last_errno;
  io_out[3] = io->bytes;
  io_out[4] = io->units;
  io_out[5] = io->malformed;
}

/* Checks offsets[i]..offsets[i]+lens[i] lie inside the slab for i < count. */
static int spans_ok(const int32_t *offsets, const int32_t *lens, int count, size_t slab_len) {
  for (int i = 0; i < count; i++) {
    if (offsets[i] < 0 || lens[i] < 0) return 0;
    if ((size_t)offsets[i] + (size_t)lens[i] > slab_len) return 0;
  }
  return 1;
}

/* ---------- TUN ---------- */

/* tunOpen(name: string, flags: number) -> { fd, name } */
static napi_value tun_open(napi_env env, napi_callback_info info) {
  char name[IFNAMSIZ + 1], actual[IFNAMSIZ];
  size_t name_len;
  int32_t flags;
  const char *failed = "open";
  napi_value out, v;
  GET_ARGS(2);
  if (napi_get_value_string_utf8(env, argv[0], name, sizeof(name), &name_len) != napi_ok)
    return throw_arg(env, "tunOpen: name must be a string");
  if (name_len >= IFNAMSIZ) return throw_arg(env, "tunOpen: name longer than 15 bytes");
  if (!get_i32(env, argv[1], &flags)) return throw_arg(env, "tunOpen: flags must be a number");
  int fd = weft_tun_open(name, flags, actual, &failed);
  if (fd < 0) return throw_errno(env, failed, -fd);
  napi_create_object(env, &out);
  napi_create_int32(env, fd, &v);
  napi_set_named_property(env, out, "fd", v);
  napi_create_string_utf8(env, actual, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, out, "name", v);
  return out;
}

/* tunSetOffload(fd, flags) */
static napi_value tun_set_offload(napi_env env, napi_callback_info info) {
  int32_t fd;
  uint32_t flags;
  GET_ARGS(2);
  if (!get_i32(env, argv[0], &fd) || !get_u32(env, argv[1], &flags))
    return throw_arg(env, "tunSetOffload(fd, flags): numbers expected");
  int r = weft_tun_set_offload(fd, flags);
  if (r < 0) return throw_errno(env, "ioctl(TUNSETOFFLOAD)", -r);
  return NULL;
}

/*
 * tunReadBatch(fd, slab: Uint8Array, slotSize, max, lens: Int32Array, io: Uint32Array,
 *              offsets?: Int32Array) -> count
 * With offsets, packets are packed densely (see weft_tun_read_batch) and
 * offsets[i] says where packet i starts.
 */
static napi_value tun_read_batch(napi_env env, napi_callback_info info) {
  int32_t fd, slot, max;
  size_t slab_len, lens_len, io_len, off_len = 0;
  struct weft_io io = {0, 0, 0, 0, 0, 0};
  GET_ARGS_UP_TO(6, 7);
  uint8_t *slab = get_typed(env, argv[1], napi_uint8_array, &slab_len);
  int32_t *lens = get_typed(env, argv[4], napi_int32_array, &lens_len);
  uint32_t *io_out = get_typed(env, argv[5], napi_uint32_array, &io_len);
  int32_t *offsets = NULL;
  if (argc > 6 && !is_nullish(env, argv[6])) {
    offsets = get_typed(env, argv[6], napi_int32_array, &off_len);
    if (offsets == NULL) return throw_arg(env, "tunReadBatch: offsets must be an Int32Array");
  }
  if (!get_i32(env, argv[0], &fd) || !get_i32(env, argv[2], &slot) || !get_i32(env, argv[3], &max) ||
      slab == NULL || lens == NULL || io_out == NULL || io_len < 6)
    return throw_arg(env, "tunReadBatch(fd, slab, slotSize, max, lens, io, offsets?): bad argument types");
  if (slot <= 0 || max < 0 || (size_t)max > lens_len || (size_t)max * (size_t)slot > slab_len)
    return throw_arg(env, "tunReadBatch: slab or lens too small for max * slotSize");
  if (offsets != NULL && ((size_t)max > off_len || slot % 64 != 0))
    return throw_arg(env, "tunReadBatch: dense reads need max offsets and a slotSize that is a multiple of 64");
  int n = weft_tun_read_batch(fd, slab, (size_t)slot, max, lens, offsets, &io);
  report_io(io_out, &io);
  if (n < 0) return throw_errno(env, "read", -n);
  return make_u32(env, (uint32_t)n);
}

/* tunWriteSuper(fd, slab, offset, len, mtu, io) -> 1 written, 0 refused or failed (see weft_tun_write_super) */
static napi_value tun_write_super(napi_env env, napi_callback_info info) {
  int32_t fd, offset, len, mtu;
  size_t slab_len, io_len;
  struct weft_io io = {0, 0, 0, 0, 0, 0};
  GET_ARGS(6);
  uint8_t *slab = get_typed(env, argv[1], napi_uint8_array, &slab_len);
  uint32_t *io_out = get_typed(env, argv[5], napi_uint32_array, &io_len);
  if (!get_i32(env, argv[0], &fd) || !get_i32(env, argv[2], &offset) || !get_i32(env, argv[3], &len) ||
      !get_i32(env, argv[4], &mtu) || slab == NULL || io_out == NULL || io_len < 6)
    return throw_arg(env, "tunWriteSuper(fd, slab, offset, len, mtu, io): bad argument types");
  if (offset < 0 || len < 0 || mtu <= 0 || (size_t)offset + (size_t)len > slab_len)
    return throw_arg(env, "tunWriteSuper: offset and len must lie inside the slab, mtu > 0");
  int r = weft_tun_write_super(fd, slab + offset, (size_t)len, mtu, &io);
  report_io(io_out, &io);
  return make_u32(env, r > 0 ? 1u : 0u);
}

/* superVnetHeader(packet: Uint8Array, mtu) -> the virtio-net header tunWriteSuper would write (a Buffer), or null (refused); may rewrite the TCP checksum to its partial form */
static napi_value super_vnet_header(napi_env env, napi_callback_info info) {
  int32_t mtu;
  size_t len;
  GET_ARGS(2);
  uint8_t *pkt = get_typed(env, argv[0], napi_uint8_array, &len);
  if (pkt == NULL || !get_i32(env, argv[1], &mtu) || mtu <= 0) return throw_arg(env, "superVnetHeader(packet, mtu): bad arguments");
  uint8_t hdr[WEFT_VNET_HDR_LEN];
  napi_value out;
  if (weft_super_vnet(pkt, len, mtu, hdr) < 0) {
    napi_get_null(env, &out);
    return out;
  }
  napi_create_buffer_copy(env, sizeof(hdr), hdr, NULL, &out);
  return out;
}

/* tunWriteBatch(fd, slab, offsets: Int32Array, lens: Int32Array, count, io) -> written */
static napi_value tun_write_batch(napi_env env, napi_callback_info info) {
  int32_t fd, count;
  size_t slab_len, off_len, lens_len, io_len;
  struct weft_io io = {0, 0, 0, 0, 0, 0};
  GET_ARGS(6);
  uint8_t *slab = get_typed(env, argv[1], napi_uint8_array, &slab_len);
  int32_t *offsets = get_typed(env, argv[2], napi_int32_array, &off_len);
  int32_t *lens = get_typed(env, argv[3], napi_int32_array, &lens_len);
  uint32_t *io_out = get_typed(env, argv[5], napi_uint32_array, &io_len);
  if (!get_i32(env, argv[0], &fd) || !get_i32(env, argv[4], &count) || slab == NULL ||
      offsets == NULL || lens == NULL || io_out == NULL || io_len < 6)
    return throw_arg(env, "tunWriteBatch(fd, slab, offsets, lens, count, io): bad argument types");
  if (count < 0 || (size_t)count > off_len || (size_t)count > lens_len ||
      !spans_ok(offsets, lens, count, slab_len))
    return throw_arg(env, "tunWriteBatch: a packet lies outside the slab");
  int n = weft_tun_write_batch(fd, slab, offsets, lens, count, &io);
  report_io(io_out, &io);
  return make_u32(env, (uint32_t)n);
}

/* ---------- UDP ---------- */

/* udpOpen(addr, port, flags, rcvbuf, sndbuf) -> { fd, rcvbuf, sndbuf } */
static napi_value udp_open(napi_env env, napi_callback_info info) {
  uint32_t addr, port;
  int32_t flags, rcv, snd;
  const char *failed = "socket";
  napi_value out, v;
  GET_ARGS(5);
  if (!get_u32(env, argv[0], &addr) || !get_u32(env, argv[1], &port) || port > 65535 ||
      !get_i32(env, argv[2], &flags) || !get_i32(env, argv[3], &rcv) || !get_i32(env, argv[4], &snd))
    return throw_arg(env, "udpOpen(addr, port, flags, rcvbuf, sndbuf): bad arguments");
  int fd = weft_udp_open(addr, (uint16_t)port, flags, &rcv, &snd, &failed);
  if (fd < 0) return throw_errno(env, failed, -fd);
  napi_create_object(env, &out);
  napi_create_int32(env, fd, &v);
  napi_set_named_property(env, out, "fd", v);
  napi_create_int32(env, rcv, &v);
  napi_set_named_property(env, out, "rcvbuf", v);
  napi_create_int32(env, snd, &v);
  napi_set_named_property(env, out, "sndbuf", v);
  return out;
}

/* udpRecvBatch(fd, slab, slotSize, max, lens: Int32Array, segs: Int32Array | null, addrs: Uint32Array, ports: Uint16Array, io) */
static napi_value udp_recv_batch(napi_env env, napi_callback_info info) {
  int32_t fd, slot, max;
  size_t slab_len, lens_len, segs_len = 0, addrs_len, ports_len, io_len;
  struct weft_io io = {0, 0, 0, 0, 0, 0};
  napi_valuetype segs_type;
  GET_ARGS(9);
  uint8_t *slab = get_typed(env, argv[1], napi_uint8_array, &slab_len);
  int32_t *lens = get_typed(env, argv[4], napi_int32_array, &lens_len);
  napi_typeof(env, argv[5], &segs_type);
  int32_t *segs = segs_type == napi_null ? NULL : get_typed(env, argv[5], napi_int32_array, &segs_len);
  uint32_t *addrs = get_typed(env, argv[6], napi_uint32_array, &addrs_len);
  uint16_t *ports = get_typed(env, argv[7], napi_uint16_array, &ports_len);
  uint32_t *io_out = get_typed(env, argv[8], napi_uint32_array, &io_len);
  if (!get_i32(env, argv[0], &fd) || !get_i32(env, argv[2], &slot) || !get_i32(env, argv[3], &max) ||
      slab == NULL || lens == NULL || (segs == NULL && segs_type != napi_null) || addrs == NULL ||
      ports == NULL || io_out == NULL || io_len < 6)
    return throw_arg(env, "udpRecvBatch(fd, slab, slotSize, max, lens, segs|null, addrs, ports, io): bad argument types");
  if (slot <= 0 || max < 0 || max > WEFT_MAX_BATCH || (size_t)max > lens_len || (segs != NULL && (size_t)max > segs_len) ||
      (size_t)max > addrs_len || (size_t)max > ports_len || (size_t)max * (size_t)slot > slab_len)
    return throw_arg(env, "udpRecvBatch: arrays too small for max, or max > MAX_BATCH");
  int n = weft_udp_recv_batch(fd, slab, (size_t)slot, max, lens, segs, addrs, ports,
                              &instance(env)->scratch, &io);
  report_io(io_out, &io);
  if (n < 0) return throw_errno(env, "recvmmsg", -n);
  return make_u32(env, (uint32_t)n);
}

/*
 * The optional per-packet results array of a send batch (argument `index`):
 * absent, undefined or null -> NULL; otherwise an Int32Array of at least
 * WEFT_SEND_RESULT_FIELDS * count elements. *ok is cleared on a bad value.
 */
static int32_t *get_send_results(napi_env env, size_t argc, napi_value *argv, size_t index, int count, int *ok) {
  napi_valuetype t;
  size_t len = 0;
  *ok = 1;
  if (argc <= index) return NULL;
  napi_typeof(env, argv[index], &t);
  if (t == napi_undefined || t == napi_null) return NULL;
  int32_t *per = get_typed(env, argv[index], napi_int32_array, &len);
  if (per == NULL || count < 0 || len < (size_t)WEFT_SEND_RESULT_FIELDS * (size_t)count) *ok = 0;
  return per;
}

/* udpSendVnetBatch(fd, slab, offsets, lens, addrs, ports, count, flags: SEND_* bits or a boolean (SEND_GSO), io, perPacket?) -> datagrams sent */
static napi_value udp_send_vnet_batch(napi_env env, napi_callback_info info) {
  int32_t fd, count, flags = 0;
  bool use_gso = false;
  size_t slab_len, off_len, lens_len, addrs_len, ports_len, io_len;
  struct weft_io io = {0, 0, 0, 0, 0, 0};
  int per_ok;
  GET_ARGS_UP_TO(9, 10);
  uint8_t *slab = get_typed(env, argv[1], napi_uint8_array, &slab_len);
  int32_t *offsets = get_typed(env, argv[2], napi_int32_array, &off_len);
  int32_t *lens = get_typed(env, argv[3], napi_int32_array, &lens_len);
  uint32_t *addrs = get_typed(env, argv[4], napi_uint32_array, &addrs_len);
  uint16_t *ports = get_typed(env, argv[5], napi_uint16_array, &ports_len);
  uint32_t *io_out = get_typed(env, argv[8], napi_uint32_array, &io_len);
  if (!get_i32(env, argv[0], &fd) || !get_i32(env, argv[6], &count) ||
      (napi_get_value_int32(env, argv[7], &flags) != napi_ok &&
       napi_get_value_bool(env, argv[7], &use_gso) != napi_ok) || slab == NULL || offsets == NULL ||
      lens == NULL || addrs == NULL || ports == NULL || io_out == NULL || io_len < 6)
    return throw_arg(env, "udpSendVnetBatch(fd, slab, offsets, lens, addrs, ports, count, useGso, io): bad argument types");
  if (count < 0 || (size_t)count > off_len || (size_t)count > lens_len || (size_t)count > addrs_len ||
      (size_t)count > ports_len || !spans_ok(offsets, lens, count, slab_len))
    return throw_arg(env, "udpSendVnetBatch: a packet lies outside the slab");
  int32_t *per = get_send_results(env, argc, argv, 9, count, &per_ok);
  if (!per_ok) return throw_arg(env, "udpSendVnetBatch: perPacket must be null or an Int32Array of 3 * count elements");
  if (napi_get_value_int32(env, argv[7], &flags) != napi_ok) flags = use_gso ? WEFT_SEND_GSO : 0;
  int n = weft_udp_send_vnet_batch(fd, slab, offsets, lens, addrs, ports, count, flags, per,
                                   &instance(env)->scratch, &io);
  report_io(io_out, &io);
  return make_u32(env, (uint32_t)n);
}

/* tunWritePackets(fd, slab, offsets, lens, count, vnet: boolean, groFlags, io) -> packets written */
static napi_value tun_write_packets(napi_env env, napi_callback_info info) {
  int32_t fd, count, flags;
  bool vnet;
  size_t slab_len, off_len, lens_len, io_len;
  struct weft_io io = {0, 0, 0, 0, 0, 0};
  GET_ARGS(8);
  uint8_t *slab = get_typed(env, argv[1], napi_uint8_array, &slab_len);
  int32_t *offsets = get_typed(env, argv[2], napi_int32_array, &off_len);
  int32_t *lens = get_typed(env, argv[3], napi_int32_array, &lens_len);
  uint32_t *io_out = get_typed(env, argv[7], napi_uint32_array, &io_len);
  if (!get_i32(env, argv[0], &fd) || !get_i32(env, argv[4], &count) ||
      napi_get_value_bool(env, argv[5], &vnet) != napi_ok || !get_i32(env, argv[6], &flags) ||
      slab == NULL || offsets == NULL || lens == NULL || io_out == NULL || io_len < 6)
    return throw_arg(env, "tunWritePackets(fd, slab, offsets, lens, count, vnet, groFlags, io): bad argument types");
  if (count < 0 || count > WEFT_MAX_WRITE || (size_t)count > off_len || (size_t)count > lens_len ||
      !spans_ok(offsets, lens, count, slab_len))
    return throw_arg(env, "tunWritePackets: a packet lies outside the slab, or count > MAX_WRITE");
  int n = weft_tun_write_packets(fd, slab, offsets, lens, count, vnet, flags, &instance(env)->scratch, &io);
  report_io(io_out, &io);
  return make_u32(env, (uint32_t)n);
}

/* udpSetGro(fd, on): throws (ENOPROTOOPT...) when the kernel lacks UDP_GRO */
static napi_value udp_set_gro(napi_env env, napi_callback_info info) {
  int32_t fd;
  bool on;
  GET_ARGS(2);
  if (!get_i32(env, argv[0], &fd) || napi_get_value_bool(env, argv[1], &on) != napi_ok)
    return throw_arg(env, "udpSetGro(fd, on): bad arguments");
  int r = weft_udp_set_gro(fd, on);
  if (r < 0) return throw_errno(env, "setsockopt(UDP_GRO)", -r);
  return NULL;
}

/* udpRejectZeroChecksum(fd): see weft_udp_reject_zero_csum */
static napi_value udp_reject_zero_checksum(napi_env env, napi_callback_info info) {
  int32_t fd;
  uint32_t max_whole = 0xffff;
  GET_ARGS_UP_TO(1, 2);
  if (!get_i32(env, argv[0], &fd) || (argc > 1 && !is_nullish(env, argv[1]) && !get_u32(env, argv[1], &max_whole)))
    return throw_arg(env, "udpRejectZeroChecksum(fd, maxWhole?): bad arguments");
  int r = weft_udp_reject_zero_csum(fd, max_whole);
  if (r < 0) return throw_errno(env, "setsockopt(SO_ATTACH_FILTER)", -r);
  return NULL;
}

/* udpSteerByInnerFlow(fd, group): see weft_udp_steer_by_inner_flow */
static napi_value udp_steer_by_inner_flow(napi_env env, napi_callback_info info) {
  int32_t fd, group;
  GET_ARGS(2);
  if (!get_i32(env, argv[0], &fd) || !get_i32(env, argv[1], &group) || group < 1 || group > 1024)
    return throw_arg(env, "udpSteerByInnerFlow(fd, group 1..1024): bad arguments");
  int r = weft_udp_steer_by_inner_flow(fd, group);
  if (r < 0) return throw_errno(env, "setsockopt(SO_ATTACH_REUSEPORT_CBPF)", -r);
  return NULL;
}

/* udpSocketDrops(fd) -> number */
static napi_value udp_socket_drops(napi_env env, napi_callback_info info) {
  int32_t fd;
  napi_value out;
  GET_ARGS(1);
  if (!get_i32(env, argv[0], &fd)) return throw_arg(env, "udpSocketDrops(fd): bad arguments");
  int64_t n = weft_udp_socket_drops(fd);
  if (n < 0) return throw_errno(env, "getsockopt(SO_MEMINFO)", (int)-n);
  napi_create_double(env, (double)n, &out);
  return out;
}

/* udpGsoSupported(fd) -> boolean */
static napi_value udp_gso_supported(napi_env env, napi_callback_info info) {
  int32_t fd;
  napi_value out;
  GET_ARGS(1);
  if (!get_i32(env, argv[0], &fd)) return throw_arg(env, "udpGsoSupported(fd): bad arguments");
  napi_get_boolean(env, weft_udp_gso_supported(fd), &out);
  return out;
}

/* ---------- offload functions exposed for tests and micro-benchmarks ---------- */

static napi_value make_buffer_copy(napi_env env, const void *parts[], const size_t lens[], int n) {
  size_t total = 0;
  for (int i = 0; i < n; i++) total += lens[i];
  void *data;
  napi_value buf;
  if (napi_create_buffer(env, total, &data, &buf) != napi_ok) return NULL;
  size_t at = 0;
  for (int i = 0; i < n; i++) {
    memcpy((uint8_t *)data + at, parts[i], lens[i]);
    at += lens[i];
  }
  return buf;
}

/* gsoSplit(packet: Uint8Array starting with a vnet header) -> Buffer[] (wire packets), or null when it cannot be split */
static napi_value gso_split(napi_env env, napi_callback_info info) {
  size_t len;
  napi_value arr;
  GET_ARGS(1);
  uint8_t *p = get_typed(env, argv[0], napi_uint8_array, &len);
  if (p == NULL || len < WEFT_VNET_HDR_LEN) return throw_arg(env, "gsoSplit(packet): a Uint8Array with a vnet header");
  struct weft_scratch *s = &instance(env)->scratch;
  struct weft_vnet_hdr h;
  weft_vnet_read(p, &h);
  int n = weft_gso_split(p + WEFT_VNET_HDR_LEN, len - WEFT_VNET_HDR_LEN, &h, s->hdrs, s->segs, WEFT_GSO_MAX_SEGS);
  if (n < 0) {
    napi_get_null(env, &arr);
    return arr;
  }
  napi_create_array_with_length(env, (size_t)n, &arr);
  for (int k = 0; k < n; k++) {
    const void *parts[2] = {s->segs[k].hdr, s->segs[k].payload};
    size_t lens[2] = {s->segs[k].hdr_len, s->segs[k].payload_len};
    napi_set_element(env, arr, (uint32_t)k, make_buffer_copy(env, parts, lens, 2));
  }
  return arr;
}

/* csumComplete(packet: Uint8Array, csumStart, csumOffset) -> boolean (completes in place) */
static napi_value csum_complete(napi_env env, napi_callback_info info) {
  size_t len;
  int32_t start, offset;
  napi_value out;
  GET_ARGS(3);
  uint8_t *p = get_typed(env, argv[0], napi_uint8_array, &len);
  if (p == NULL || !get_i32(env, argv[1], &start) || !get_i32(env, argv[2], &offset) || start < 0 || offset < 0 ||
      start > 65535 || offset > 65535)
    return throw_arg(env, "csumComplete(packet, csumStart, csumOffset): bad arguments");
  napi_get_boolean(env, weft_csum_complete(p, len, (uint16_t)start, (uint16_t)offset) == 0, &out);
  return out;
}

/* checksum(buf, off, len) -> the Internet checksum (complemented), as the C data path computes it */
static napi_value checksum(napi_env env, napi_callback_info info) {
  size_t len;
  int32_t off, n;
  GET_ARGS(3);
  uint8_t *p = get_typed(env, argv[0], napi_uint8_array, &len);
  if (p == NULL || !get_i32(env, argv[1], &off) || !get_i32(env, argv[2], &n) || off < 0 || n < 0 || (size_t)off + (size_t)n > len)
    return throw_arg(env, "checksum(buf, off, len): range outside the buffer");
  return make_u32(env, (uint16_t)~weft_csum_fold(weft_csum_add(p + off, (size_t)n, 0)));
}

/*
 * groCoalesce(slab, offsets, lens, count, flags) -> Buffer[]: what tunWritePackets
 * would write (vnet header + packet) for each group, without a TUN. Rewrites
 * merged groups' first headers in the slab, as the real path does.
 */
static napi_value gro_coalesce(napi_env env, napi_callback_info info) {
  size_t slab_len, off_len, lens_len;
  int32_t count, flags;
  napi_value arr;
  GET_ARGS(5);
  uint8_t *slab = get_typed(env, argv[0], napi_uint8_array, &slab_len);
  int32_t *offsets = get_typed(env, argv[1], napi_int32_array, &off_len);
  int32_t *lens = get_typed(env, argv[2], napi_int32_array, &lens_len);
  if (slab == NULL || offsets == NULL || lens == NULL || !get_i32(env, argv[3], &count) || !get_i32(env, argv[4], &flags) ||
      count < 0 || count > WEFT_MAX_WRITE || (size_t)count > off_len || (size_t)count > lens_len ||
      !spans_ok(offsets, lens, count, slab_len))
    return throw_arg(env, "groCoalesce(slab, offsets, lens, count, flags): bad arguments");
  struct weft_scratch *s = &instance(env)->scratch;
  int n = weft_gro_plan(slab, offsets, lens, count, flags, s->groups);
  napi_create_array_with_length(env, (size_t)n, &arr);
  static const uint8_t zero[WEFT_VNET_HDR_LEN];
  for (int g = 0; g < n; g++) {
    const struct weft_gro_group *grp = &s->groups[g];
    uint8_t hdr[WEFT_VNET_HDR_LEN];
    const void *parts[WEFT_GRO_MAX_SEGS + 2];
    size_t plens[WEFT_GRO_MAX_SEGS + 2];
    int np = 0;
    if (grp->count > 1) weft_vnet_write(hdr, &grp->vnet);
    parts[np] = grp->count > 1 ? (const void *)hdr : (const void *)zero;
    plens[np++] = WEFT_VNET_HDR_LEN;
    parts[np] = slab + offsets[grp->first];
    plens[np++] = (size_t)lens[grp->first];
    for (int k = 1; k < grp->count; k++) {
      int j = grp->first + k;
      parts[np] = slab + offsets[j] + grp->vnet.hdr_len;
      plens[np++] = (size_t)lens[j] - grp->vnet.hdr_len;
    }
    napi_set_element(env, arr, (uint32_t)g, make_buffer_copy(env, parts, plens, np));
  }
  return arr;
}

/* udpSendBatch(fd, slab, offsets, lens, addrs: Uint32Array, ports: Uint16Array, count, io, perPacket?) -> sent */
static napi_value udp_send_batch(napi_env env, napi_callback_info info) {
  int32_t fd, count;
  size_t slab_len, off_len, lens_len, addrs_len, ports_len, io_len;
  struct weft_io io = {0, 0, 0, 0, 0, 0};
  int per_ok;
  GET_ARGS_UP_TO(8, 9);
  uint8_t *slab = get_typed(env, argv[1], napi_uint8_array, &slab_len);
  int32_t *offsets = get_typed(env, argv[2], napi_int32_array, &off_len);
  int32_t *lens = get_typed(env, argv[3], napi_int32_array, &lens_len);
  uint32_t *addrs = get_typed(env, argv[4], napi_uint32_array, &addrs_len);
  uint16_t *ports = get_typed(env, argv[5], napi_uint16_array, &ports_len);
  uint32_t *io_out = get_typed(env, argv[7], napi_uint32_array, &io_len);
  if (!get_i32(env, argv[0], &fd) || !get_i32(env, argv[6], &count) || slab == NULL ||
      offsets == NULL || lens == NULL || addrs == NULL || ports == NULL || io_out == NULL || io_len < 6)
    return throw_arg(env, "udpSendBatch(fd, slab, offsets, lens, addrs, ports, count, io): bad argument types");
  if (count < 0 || count > WEFT_MAX_BATCH || (size_t)count > off_len || (size_t)count > lens_len ||
      (size_t)count > addrs_len || (size_t)count > ports_len || !spans_ok(offsets, lens, count, slab_len))
    return throw_arg(env, "udpSendBatch: a datagram lies outside the slab, or count > MAX_BATCH");
  int32_t *per = get_send_results(env, argc, argv, 8, count, &per_ok);
  if (!per_ok) return throw_arg(env, "udpSendBatch: perPacket must be null or an Int32Array of 3 * count elements");
  int n = weft_udp_send_batch(fd, slab, offsets, lens, addrs, ports, count, per,
                              &instance(env)->scratch, &io);
  report_io(io_out, &io);
  return make_u32(env, (uint32_t)n);
}

/*
 * spinPoll(fdA, fdB, maxMicros) -> 0 (fdA readable), 1 (fdB readable), -1 (neither within maxMicros),
 * -2 (a descriptor reports an error or hang-up).
 * Busy-waits with non-blocking poll(2): a packet that arrives within the window
 * is handled without the thread going to sleep and being woken again.
 */
static napi_value spin_poll(napi_env env, napi_callback_info info) {
  int32_t a, b, us;
  GET_ARGS(3);
  if (!get_i32(env, argv[0], &a) || !get_i32(env, argv[1], &b) || !get_i32(env, argv[2], &us))
    return throw_arg(env, "spinPoll(fdA, fdB, maxMicros): numbers expected");
  struct pollfd p[2] = {{.fd = a, .events = POLLIN, .revents = 0}, {.fd = b, .events = POLLIN, .revents = 0}};
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    int r = poll(p, 2, 0);
    if (r > 0) {
      /* only readability counts: an error on a descriptor goes back to the watchers, which report it */
      int which = (p[0].revents & POLLIN) ? 0 : (p[1].revents & POLLIN) ? 1 : -2;
      napi_value out;
      napi_create_int32(env, which, &out);
      return out;
    }
    clock_gettime(CLOCK_MONOTONIC, &t);
    long elapsed = (t.tv_sec - t0.tv_sec) * 1000000L + (t.tv_nsec - t0.tv_nsec) / 1000L;
    if (elapsed >= us) break;
  }
  napi_value out;
  napi_create_int32(env, -1, &out);
  return out;
}

/* notifySend(socketPath: string, message: string): sd_notify's one datagram */
static napi_value notify_send(napi_env env, napi_callback_info info) {
  char path[128], msg[512];
  size_t path_len, msg_len;
  GET_ARGS(2);
  if (napi_get_value_string_utf8(env, argv[0], path, sizeof(path), &path_len) != napi_ok)
    return throw_arg(env, "notifySend: socketPath must be a string");
  if (path_len >= sizeof(path) - 1) return throw_arg(env, "notifySend: socketPath is too long");
  if (napi_get_value_string_utf8(env, argv[1], msg, sizeof(msg), &msg_len) != napi_ok)
    return throw_arg(env, "notifySend: message must be a string");
  if (msg_len >= sizeof(msg) - 1) return throw_arg(env, "notifySend: message is too long");
  int rc = weft_notify_send(path, path_len, msg, msg_len);
  if (rc < 0) return throw_errno(env, "sendto", -rc);
  return NULL;
}

/* lockFile(path): the descriptor holding an exclusive flock on path; throws EWOULDBLOCK when held */
static napi_value lock_file(napi_env env, napi_callback_info info) {
  char path[4096];
  size_t path_len;
  GET_ARGS(1);
  if (napi_get_value_string_utf8(env, argv[0], path, sizeof(path), &path_len) != napi_ok)
    return throw_arg(env, "lockFile: path must be a string");
  if (path_len >= sizeof(path) - 1) return throw_arg(env, "lockFile: path is too long");
  int fd = weft_lock_file(path);
  if (fd < 0) return throw_errno(env, "flock", -fd);
  napi_value out;
  napi_create_int32(env, fd, &out);
  return out;
}

/* closeFd(fd) */
static napi_value close_fd(napi_env env, napi_callback_info info) {
  int32_t fd;
  GET_ARGS(1);
  if (!get_i32(env, argv[0], &fd) || fd < 0) return throw_arg(env, "closeFd(fd): fd must be >= 0");
  if (close(fd) < 0 && errno != EINTR) return throw_errno(env, "close", errno);
  return NULL;
}

/* ---------- readiness watchers (uv_poll on this environment's loop) ---------- */

static void unlink_poll(struct weft_poll *p) {
  struct weft_poll **pp = &p->owner->polls;
  while (*pp != NULL && *pp != p) pp = &(*pp)->next;
  if (*pp == p) *pp = p->next;
}

static void on_poll_closed(uv_handle_t *h) {
  struct weft_poll *p = (struct weft_poll *)h->data;
  struct weft_env *owner = p->owner;
  free(p);
  /* the last pending close of a teardown lets the environment go on (and free `owner`) */
  if (--owner->closing_polls == 0 && owner->cleanup != NULL) {
    napi_async_cleanup_hook_handle hook = owner->cleanup;
    owner->cleanup = NULL;
    napi_remove_async_cleanup_hook(hook);
  }
}

/* The only way a watcher is closed: counted until on_poll_closed. */
static void close_poll(struct weft_poll *p) {
  p->owner->closing_polls++;
  uv_close((uv_handle_t *)&p->handle, on_poll_closed);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  struct weft_poll *p = (struct weft_poll *)h->data;
  napi_env env = p->env;
  napi_handle_scope scope;
  napi_value cb, global, args[2], result;
  if (p->stopped) return;
  napi_open_handle_scope(env, &scope);
  napi_get_reference_value(env, p->callback, &cb);
  napi_get_global(env, &global);
  napi_create_int32(env, status, &args[0]);
  napi_create_int32(env, events, &args[1]);
  if (napi_make_callback(env, p->async, global, cb, 2, args, &result) == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
  napi_close_handle_scope(env, scope);
}

static void poll_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  /* the handle is garbage: the watcher (owned by libuv until on_poll_closed) forgets its token */
  struct weft_poll_token *t = data;
  if (t->poll != NULL) t->poll->token = NULL;
  free(t);
}

/* pollStart(fd, callback(status, events)) -> handle. Watches fd for readability. */
static napi_value poll_start(napi_env env, napi_callback_info info) {
  int32_t fd;
  uv_loop_t *loop;
  napi_value name, handle;
  napi_valuetype t;
  GET_ARGS(2);
  if (!get_i32(env, argv[0], &fd) || napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function)
    return throw_arg(env, "pollStart(fd, callback): bad arguments");
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return throw_arg(env, "pollStart: no event loop");
  struct weft_poll *p = calloc(1, sizeof(*p));
  if (p == NULL) return throw_errno(env, "calloc", ENOMEM);
  int r = uv_poll_init(loop, &p->handle, fd);
  if (r < 0) {
    free(p);
    return throw_errno(env, "uv_poll_init", -r);
  }
  p->handle.data = p;
  p->env = env;
  p->owner = instance(env);
  napi_create_reference(env, argv[1], 1, &p->callback);
  napi_create_string_utf8(env, "weft:poll", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &p->async);
  r = uv_poll_start(&p->handle, UV_READABLE, on_poll);
  if (r < 0) {
    napi_delete_reference(env, p->callback);
    napi_async_destroy(env, p->async);
    close_poll(p);
    return throw_errno(env, "uv_poll_start", -r);
  }
  p->next = p->owner->polls;
  p->owner->polls = p;
  struct weft_poll_token *token = calloc(1, sizeof(*token));
  if (token == NULL) {
    napi_delete_reference(env, p->callback);
    napi_async_destroy(env, p->async);
    stop_poll(p);
    return throw_errno(env, "calloc", ENOMEM);
  }
  token->poll = p;
  p->token = token;
  napi_create_external(env, token, poll_finalize, NULL, &handle);
  return handle;
}

static void stop_poll(struct weft_poll *p) {
  p->stopped = 1;
  if (p->token != NULL) {
    p->token->poll = NULL;
    p->token = NULL;
  }
  uv_poll_stop(&p->handle);
  unlink_poll(p);
  close_poll(p);
}

/* pollStop(handle): stops watching; safe to call twice. */
static napi_value poll_stop(napi_env env, napi_callback_info info) {
  void *data;
  GET_ARGS(1);
  if (napi_get_value_external(env, argv[0], &data) != napi_ok)
    return throw_arg(env, "pollStop(handle): not a watcher handle");
  struct weft_poll *p = ((struct weft_poll_token *)data)->poll;
  if (p == NULL) return NULL; /* already stopped */
  napi_delete_reference(env, p->callback);
  napi_async_destroy(env, p->async);
  stop_poll(p);
  return NULL;
}

/*
 * Environment teardown (worker exit): close any watcher JS did not stop, then
 * hold the environment until every close still pending has called back,
 * including those of watchers JS stopped just before (a worker that calls
 * pollStop and exits at once). Node 20 happens to run its loop before this
 * hook, so those are usually done already; nothing here relies on it.
 */
static void on_env_teardown(napi_async_cleanup_hook_handle hook, void *arg) {
  struct weft_env *e = arg;
  while (e->polls != NULL) {
    struct weft_poll *p = e->polls;
    napi_delete_reference(p->env, p->callback);
    napi_async_destroy(p->env, p->async);
    stop_poll(p);
  }
  if (e->closing_polls == 0) {
    napi_remove_async_cleanup_hook(hook);
    return;
  }
  e->cleanup = hook; /* on_poll_closed removes it after the last close */
}

static void free_instance(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

/* ---------- module ---------- */

static void set_u32(napi_env env, napi_value obj, const char *name, uint32_t v) {
  napi_set_named_property(env, obj, name, make_u32(env, v));
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  struct weft_env *e = calloc(1, sizeof(*e));
  if (e == NULL) return NULL;
  napi_set_instance_data(env, e, free_instance, NULL);
  napi_add_async_cleanup_hook(env, on_env_teardown, e, NULL);

  napi_property_descriptor fns[] = {
      {"tunOpen", NULL, tun_open, NULL, NULL, NULL, napi_default, NULL},
      {"tunSetOffload", NULL, tun_set_offload, NULL, NULL, NULL, napi_default, NULL},
      {"tunReadBatch", NULL, tun_read_batch, NULL, NULL, NULL, napi_default, NULL},
      {"tunWriteSuper", NULL, tun_write_super, NULL, NULL, NULL, napi_default, NULL},
      {"superVnetHeader", NULL, super_vnet_header, NULL, NULL, NULL, napi_default, NULL},
      {"tunWriteBatch", NULL, tun_write_batch, NULL, NULL, NULL, napi_default, NULL},
      {"udpOpen", NULL, udp_open, NULL, NULL, NULL, napi_default, NULL},
      {"udpRecvBatch", NULL, udp_recv_batch, NULL, NULL, NULL, napi_default, NULL},
      {"udpSendBatch", NULL, udp_send_batch, NULL, NULL, NULL, napi_default, NULL},
      {"closeFd", NULL, close_fd, NULL, NULL, NULL, napi_default, NULL},
      {"notifySend", NULL, notify_send, NULL, NULL, NULL, napi_default, NULL},
      {"lockFile", NULL, lock_file, NULL, NULL, NULL, napi_default, NULL},
      {"spinPoll", NULL, spin_poll, NULL, NULL, NULL, napi_default, NULL},
      {"udpSendVnetBatch", NULL, udp_send_vnet_batch, NULL, NULL, NULL, napi_default, NULL},
      {"tunWritePackets", NULL, tun_write_packets, NULL, NULL, NULL, napi_default, NULL},
      {"udpSetGro", NULL, udp_set_gro, NULL, NULL, NULL, napi_default, NULL},
      {"udpGsoSupported", NULL, udp_gso_supported, NULL, NULL, NULL, napi_default, NULL},
      {"udpRejectZeroChecksum", NULL, udp_reject_zero_checksum, NULL, NULL, NULL, napi_default, NULL},
      {"udpSocketDrops", NULL, udp_socket_drops, NULL, NULL, NULL, napi_default, NULL},
      {"udpSteerByInnerFlow", NULL, udp_steer_by_inner_flow, NULL, NULL, NULL, napi_default, NULL},
      {"gsoSplit", NULL, gso_split, NULL, NULL, NULL, napi_default, NULL},
      {"groCoalesce", NULL, gro_coalesce, NULL, NULL, NULL, napi_default, NULL},
      {"csumComplete", NULL, csum_complete, NULL, NULL, NULL, napi_default, NULL},
      {"checksum", NULL, checksum, NULL, NULL, NULL, napi_default, NULL},
      {"pollStart", NULL, poll_start, NULL, NULL, NULL, napi_default, NULL},
      {"pollStop", NULL, poll_stop, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(fns) / sizeof(fns[0]), fns);
  set_u32(env, exports, "MAX_BATCH", WEFT_MAX_BATCH);
  set_u32(env, exports, "TUN_VNET_HDR", WEFT_TUN_VNET_HDR);
  set_u32(env, exports, "TUN_MULTI_QUEUE", WEFT_TUN_MULTI_QUEUE);
  set_u32(env, exports, "UDP_REUSEPORT", WEFT_UDP_REUSEPORT);
  set_u32(env, exports, "MAX_WRITE", WEFT_MAX_WRITE);
  set_u32(env, exports, "GSO_MAX_SEGS", WEFT_GSO_MAX_SEGS);
  set_u32(env, exports, "VNET_HDR_LEN", WEFT_VNET_HDR_LEN);
  set_u32(env, exports, "TUN_F_CSUM", WEFT_TUN_F_CSUM);
  set_u32(env, exports, "TUN_F_TSO4", WEFT_TUN_F_TSO4);
  set_u32(env, exports, "TUN_F_TSO6", WEFT_TUN_F_TSO6);
  set_u32(env, exports, "TUN_F_TSO_ECN", WEFT_TUN_F_TSO_ECN);
  set_u32(env, exports, "TUN_F_USO4", WEFT_TUN_F_USO4);
  set_u32(env, exports, "TUN_F_USO6", WEFT_TUN_F_USO6);
  set_u32(env, exports, "GRO_TCP", WEFT_GRO_TCP);
  set_u32(env, exports, "GRO_UDP", WEFT_GRO_UDP);
  set_u32(env, exports, "GRO_TRUST_L4_CSUM", WEFT_GRO_TRUST_L4_CSUM);
  set_u32(env, exports, "SEND_GSO", WEFT_SEND_GSO);
  set_u32(env, exports, "SEND_PACK_RUNS", WEFT_SEND_PACK_RUNS);
  return exports;
}
