#include "respond.h"

void respond_200(exports_wasi_http_incoming_handler_own_response_outparam_t out,
                 const char *text, size_t len) {
  wasi_http_types_own_outgoing_response_t response =
      wasi_http_types_constructor_outgoing_response(wasi_http_types_constructor_fields());
  wasi_http_types_own_outgoing_body_t body;
  wasi_http_types_method_outgoing_response_body(
      wasi_http_types_borrow_outgoing_response(response), &body);
  wasi_http_types_result_own_outgoing_response_error_code_t result = {
      .is_err = false, .val = {.ok = response}};
  wasi_http_types_static_response_outparam_set(out, &result);

  wasi_http_types_own_output_stream_t stream;
  wasi_http_types_method_outgoing_body_write(wasi_http_types_borrow_outgoing_body(body), &stream);
  proxy_list_u8_t contents = {.ptr = (uint8_t *)text, .len = len};
  wasi_io_streams_stream_error_t stream_err;
  wasi_io_streams_method_output_stream_blocking_write_and_flush(
      wasi_io_streams_borrow_output_stream(stream), &contents, &stream_err);
  wasi_io_streams_output_stream_drop_own(stream);
  wasi_http_types_error_code_t finish_err;
  wasi_http_types_static_outgoing_body_finish(body, NULL, &finish_err);
}
