"""An HTTP component on the Spin Python SDK."""

from spin_sdk import http
from spin_sdk.http import Request, Response


class HttpHandler(http.Handler):
    async def handle_request(self, request: Request) -> Response:
        return Response(
            200,
            {"content-type": "text/plain"},
            bytes(f"Hello from {{project-name}}! You asked for {request.uri}\n", "utf-8"),
        )
