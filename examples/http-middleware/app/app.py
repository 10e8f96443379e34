"""The app behind the auth middleware, written against the Python Spin SDK (WASI 0.3
handler). It trusts `x-authenticated` because only the middleware can reach it."""

from spin_sdk import http
from spin_sdk.http import Request, Response


class HttpHandler(http.Handler):
    async def handle_request(self, request: Request) -> Response:
        who = "authenticated caller" if request.headers.get("x-authenticated") == "yes" else "stranger"
        return Response(200, {"content-type": "text/plain"}, bytes(f"Hello, {who}! You asked for {request.uri}\n", "utf-8"))
