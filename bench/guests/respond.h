// Shared by the C benchmark guests: answers a wasi:http 0.2 request with 200 and `body`.
#ifndef BENCH_RESPOND_H
#define BENCH_RESPOND_H
#include <stddef.h>
#include "proxy.h"

void respond_200(exports_wasi_http_incoming_handler_own_response_outparam_t out,
                 const char *body, size_t len);
#endif
