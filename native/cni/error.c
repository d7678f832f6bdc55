/* CNI error results: {"cniVersion", "code", "msg", "details"} on stdout. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cni.h"

int cni_fail(struct cni_error *err, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  err->code = code;
  vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
  va_end(ap);
  err->details[0] = '\0';
  return -1;
}

void cni_details(struct cni_error *err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->details, sizeof(err->details), fmt, ap);
  va_end(ap);
}

/*
 * A JSON string of text with every byte that is not part of valid UTF-8 (a
 * name from the environment, a message cut mid-character) replaced by '?':
 * jansson refuses invalid UTF-8, and a CNI error must keep its msg.
 */
static json_t *utf8_string(const char *text) {
  size_t n = strlen(text);
  char *clean = malloc(n + 1);
  if (clean == NULL) return json_string("(out of memory)");
  const unsigned char *s = (const unsigned char *)text;
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    bool ok = len > 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; k++) ok = (s[i + k] & 0xc0) == 0x80;
    if (ok && len > 1) {
      json_t *probe = json_stringn((const char *)s + i, len); /* overlong forms and surrogates */
      ok = probe != NULL;
      if (probe != NULL) json_decref(probe);
    }
    if (!ok) len = 1;
    for (size_t k = 0; k < len; k++) clean[i + k] = ok ? (char)s[i + k] : '?';
    i += len;
  }
  clean[n] = '\0';
  json_t *v = json_string(clean);
  free(clean);
  return v;
}

void cni_error_print(const struct cni_error *err, const char *cni_version) {
  json_t *o = json_object();
  json_object_set_new(o, "cniVersion", json_string(cni_version));
  json_object_set_new(o, "code", json_integer(err->code));
  json_object_set_new(o, "msg", utf8_string(err->msg));
  if (err->details[0] != '\0') json_object_set_new(o, "details", utf8_string(err->details));
  char *text = json_dumps(o, JSON_INDENT(2));
  json_decref(o);
  if (text == NULL) {
    static const char fallback[] = "{\"code\":999,\"msg\":\"out of memory\"}\n";
    write_all(STDOUT_FILENO, fallback, sizeof(fallback) - 1);
    return;
  }
  write_all(STDOUT_FILENO, text, strlen(text));
  write_all(STDOUT_FILENO, "\n", 1);
  free(text);
}
