// An HTTP component in C: answers every request with a greeting and the path it asked
// for, through the wasi:http 0.2 proxy world (bindings made by `wit-bindgen c` at build
// time).
#include <stdio.h>
#include <string.h>
#include "proxy.h"

void exports_wasi_http_incoming_handler_handle(
    exports_wasi_http_incoming_handler_own_incoming_request_t request,
    exports_wasi_http_incoming_handler_own_response_outparam_t response_out) {
  proxy_string_t path = {0};
  wasi_http_types_method_incoming_request_path_with_query(
      wasi_http_types_borrow_incoming_request(request), &path);
  char text[1024];
  int length = snprintf(text, sizeof text, "Hello from {{project-name}}! You asked for %.*s\n",
                        (int)path.len, path.ptr ? (const char *)path.ptr : "/");
  if (length < 0 || length >= (int)sizeof text) length = (int)sizeof text - 1;
  proxy_string_free(&path);
  wasi_http_types_incoming_request_drop_own(request);

  wasi_http_types_own_outgoing_response_t response =
      wasi_http_types_constructor_outgoing_response(wasi_http_types_constructor_fields());
  wasi_http_types_own_outgoing_body_t body;
  wasi_http_types_method_outgoing_response_body(
      wasi_http_types_borrow_outgoing_response(response), &body);
  wasi_http_types_result_own_outgoing_response_error_code_t result = {
      .is_err = false, .val = {.ok = response}};
  wasi_http_types_static_response_outparam_set(response_out, &result);

  wasi_http_types_own_output_stream_t stream;
  wasi_http_types_method_outgoing_body_write(wasi_http_types_borrow_outgoing_body(body), &stream);
  proxy_list_u8_t contents = {.ptr = (uint8_t *)text, .len = (size_t)length};
  wasi_io_streams_stream_error_t stream_error;
  wasi_io_streams_method_output_stream_blocking_write_and_flush(
      wasi_io_streams_borrow_output_stream(stream), &contents, &stream_error);
  wasi_io_streams_output_stream_drop_own(stream);

  wasi_http_types_error_code_t finish_error;
  wasi_http_types_static_outgoing_body_finish(body, NULL, &finish_error);
}
