"""A Python app written against the published Spin SDK (PyPI spin-sdk 5.0), unchanged
Spin-style code: it imports every Spin interface and exports the WASI 0.3 handler.

- `/greeting`: a component variable (`spin:variables@3.0.0`);
- `/visits`: a counter in the default key-value store (`spin:key-value@3.0.0`);
- `/mqtt`: an MQTT connection to 127.0.0.1:1883, which the app does not grant (refused);
- anything else: a greeting.
"""

from spin_sdk import http, key_value, mqtt, variables
from spin_sdk.http import Request, Response


def text(status: int, body: str) -> Response:
    return Response(status, {"content-type": "text/plain"}, bytes(body, "utf-8"))


class HttpHandler(http.Handler):
    async def handle_request(self, request: Request) -> Response:
        if request.uri.endswith("/greeting"):
            return text(200, await variables.get("greeting"))
        if request.uri.endswith("/visits"):
            with await key_value.open_default() as store:
                visits = int((await store.get("visits")) or b"0") + 1
                await store.set("visits", str(visits).encode())
            return text(200, str(visits))
        if request.uri.endswith("/mqtt"):
            await mqtt.open("mqtt://127.0.0.1:1883", "", "", 30)
            return text(200, "connected")
        return text(200, "Hello from Python!")
