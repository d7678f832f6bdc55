/* CNI error results: {"cniVersion", "code", "msg", "details"} on stdout. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
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

void cni_error_print(const struct cni_error *err, const char *cni_version) {
  json_t *o = json_object();
  json_object_set_new(o, "cniVersion", json_string(cni_version));
  json_object_set_new(o, "code", json_integer(err->code));
  json_object_set_new(o, "msg", json_string(err->msg));
  if (err->details[0] != '\0') json_object_set_new(o, "details", json_string(err->details));
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
