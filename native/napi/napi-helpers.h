/*
 * Argument and error helpers shared by weft's N-API files (native/src/binding.c,
 * native/bpf/binding.c): header-only, each addon gets its own static copies.
 */
#ifndef WEFT_NAPI_HELPERS_H
#define WEFT_NAPI_HELPERS_H

#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/*
 * Throws an Error with code = the errno's name, syscall = what failed, errno,
 * and the message "<what> failed: <strerror> (<NAME>)", followed by
 * "; <detail>" when detail is not NULL.
 */
static inline napi_value weft_throw_errno_detail(napi_env env, const char *syscall, int err, const char *detail) {
  napi_value msg, code, error, sc, num;
  char text[900];
  const char *name = strerrorname_np(err);
  if (name == NULL) name = "EUNKNOWN";
  if (detail != NULL && detail[0] != '\0')
    snprintf(text, sizeof(text), "%s failed: %s (%s); %s", syscall, strerror(err), name, detail);
  else
    snprintf(text, sizeof(text), "%s failed: %s (%s)", syscall, strerror(err), name);
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, msg, &error);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sc);
  napi_set_named_property(env, error, "syscall", sc);
  napi_create_int32(env, err, &num);
  napi_set_named_property(env, error, "errno", num);
  napi_throw(env, error);
  return NULL;
}

static inline napi_value throw_errno(napi_env env, const char *syscall, int err) {
  return weft_throw_errno_detail(env, syscall, err, NULL);
}

static inline napi_value throw_arg(napi_env env, const char *what) {
  napi_throw_range_error(env, "ERR_WEFT_NATIVE_ARG", what);
  return NULL;
}

#define GET_ARGS(n)                                                       \
  size_t argc = (n);                                                      \
  napi_value argv[(n) > 0 ? (n) : 1];                                     \
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok)    \
    return NULL;                                                          \
  if (argc < (n)) return throw_arg(env, "missing arguments")

/* `required` arguments, then up to `most` in all; argc says how many came. */
#define GET_ARGS_UP_TO(required, most)                                    \
  size_t argc = (most);                                                   \
  napi_value argv[(most)];                                                \
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok)    \
    return NULL;                                                          \
  if (argc < (required)) return throw_arg(env, "missing arguments");      \
  if (argc > (most)) argc = (most)

static inline napi_value make_u32(napi_env env, uint32_t v) {
  napi_value out;
  napi_create_uint32(env, v, &out);
  return out;
}

/* 1 for undefined or null: an optional argument left out. */
static inline int is_nullish(napi_env env, napi_value v) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return 0;
  return t == napi_undefined || t == napi_null;
}

static inline int get_i32(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}

static inline int get_u32(napi_env env, napi_value v, uint32_t *out) {
  return napi_get_value_uint32(env, v, out) == napi_ok;
}

/* A typed array of the expected element type; *len is its element count. */
static inline void *get_typed(napi_env env, napi_value v, napi_typedarray_type want, size_t *len) {
  bool is;
  napi_typedarray_type type;
  void *data;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return NULL;
  if (napi_get_typedarray_info(env, v, &type, len, &data, NULL, NULL) != napi_ok) return NULL;
  if (type != want) return NULL;
  /* N-API reports a zero-length array's data as NULL; hand out a valid, unused pointer instead */
  static uint64_t empty;
  return data == NULL && *len == 0 ? (void *)&empty : data;
}

#endif
