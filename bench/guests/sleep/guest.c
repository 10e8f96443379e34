// The concurrency benchmark guest: waits `?ms=N` milliseconds (default 1000) on a
// wasi:clocks timer, then answers. Small on purpose: what is measured is the host's cost
// per waiting request.
#include <stdlib.h>
#include <string.h>
#include "respond.h"

void exports_wasi_http_incoming_handler_handle(
    exports_wasi_http_incoming_handler_own_incoming_request_t request,
    exports_wasi_http_incoming_handler_own_response_outparam_t response_out) {
  unsigned long ms = 1000;
  proxy_string_t path;
  if (wasi_http_types_method_incoming_request_path_with_query(
          wasi_http_types_borrow_incoming_request(request), &path)) {
    char buf[256] = {0};
    memcpy(buf, path.ptr, path.len < sizeof buf - 1 ? path.len : sizeof buf - 1);
    const char *q = strstr(buf, "ms=");
    if (q) ms = strtoul(q + 3, NULL, 10);
    proxy_string_free(&path);
  }
  wasi_http_types_incoming_request_drop_own(request);

  wasi_io_poll_own_pollable_t timer = wasi_clocks_monotonic_clock_subscribe_duration(ms * 1000000ull);
  wasi_io_poll_method_pollable_block(wasi_io_poll_borrow_pollable(timer));
  wasi_io_poll_pollable_drop_own(timer);

  static const char body[] = "waited\n";
  respond_200(response_out, body, sizeof body - 1);
}
