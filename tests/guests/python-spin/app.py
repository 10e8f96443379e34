"""A Python app written against the published Spin SDK (PyPI spin-sdk 5.0), unchanged
from the SDK's own example plus a variables lookup and a key-value call: it imports every Spin interface and
exports the WASI 0.3 handler."""

from spin_sdk import http, key_value, variables
from spin_sdk.http import Request, Response


class HttpHandler(http.Handler):
    async def handle_request(self, request: Request) -> Response:
        if request.uri.endswith("/greeting"):
            greeting = await variables.get("greeting")
            return Response(200, {"content-type": "text/plain"}, bytes(greeting, "utf-8"))
        if request.uri.endswith("/kv"):
            # spin:key-value@3.0.0 is not in Tessera yet: this call fails.
            store = await key_value.open_default()
            return Response(200, {"content-type": "text/plain"}, b"opened")
        return Response(200, {"content-type": "text/plain"}, bytes("Hello from Python!", "utf-8"))
