"""A small to-do API in Python with the Spin SDK, keeping its state in the default
key-value store:

- GET  /todos        the list, one item per line
- POST /todos        adds the request body as an item
- GET  /visits       counts calls
"""

import json

from spin_sdk import http, key_value
from spin_sdk.http import Request, Response


def text(status: int, body: str) -> Response:
    return Response(status, {"content-type": "text/plain"}, bytes(body, "utf-8"))


class HttpHandler(http.Handler):
    async def handle_request(self, request: Request) -> Response:
        with await key_value.open_default() as store:
            if request.uri.endswith("/visits"):
                visits = int((await store.get("visits")) or b"0") + 1
                await store.set("visits", str(visits).encode())
                return text(200, f"{visits}\n")
            if request.uri.endswith("/todos"):
                todos = json.loads((await store.get("todos")) or b"[]")
                if request.method == "POST":
                    item = (request.body or b"").decode().strip()
                    if not item:
                        return text(400, "send the item as the request body\n")
                    todos.append(item)
                    await store.set("todos", json.dumps(todos).encode())
                    return text(201, f"added #{len(todos)}\n")
                return text(200, "".join(f"{i + 1}. {t}\n" for i, t in enumerate(todos)))
        return text(404, "try /todos or /visits\n")
