"""What the HTTP server lets in, checked before any route runs (a plain ASGI middleware).

- the body limit counts bytes as they arrive (chunked bodies included), not what Content-Length says;
- a Host allow-list: a server bound to loopback answers only to loopback names (and `allow_hosts`),
  so a web page cannot reach it through DNS rebinding;
- an API key (`--api-key` or GENREC_API_KEY): every route but the static chat page needs
  `Authorization: Bearer <key>`; listening beyond loopback without one is refused at start
  (`check_listen`).
Refusals use the API's one error shape: {"error": {"message", "status"}}.
"""
from __future__ import annotations

import hmac
import json

LOOPBACK = {"localhost", "127.0.0.1", "::1"}
PUBLIC_PATHS = {"/", "/favicon.ico"}  # the chat page itself holds no data; it asks for the key


class ListenError(ValueError):
    """A server that would listen beyond loopback without an API key."""


def is_loopback(host: str) -> bool:
    return host in LOOPBACK or host.startswith("127.")


def check_listen(host: str, api_key: str | None) -> None:
    if not is_loopback(host) and not api_key:
        raise ListenError(f"refusing to listen on {host} without an API key: pass --api-key KEY (or set "
                          "GENREC_API_KEY); clients then send 'Authorization: Bearer KEY'")


def _host_name(value: str) -> str:
    value = value.strip().lower()
    if value.startswith("["):  # [::1]:8000
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


async def _send_error(send, status: int, message: str) -> None:
    body = json.dumps({"error": {"message": message, "status": status}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware: body limit, Host allow-list, API key."""

    def __init__(self, app, max_body: int, bind_host: str = "127.0.0.1", api_key: str | None = None,
                 allow_hosts: tuple[str, ...] = ()):
        self.app, self.max_body, self.api_key = app, max_body, api_key
        # bound beyond loopback, the key is what keeps strangers out; bound to loopback, the Host is
        self.hosts = None if not is_loopback(bind_host) else LOOPBACK | {bind_host} | {h.lower() for h in allow_hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.hosts is not None and _host_name(headers.get("host", "")) not in self.hosts:
            return await _send_error(send, 403, "this server answers only to its own host names")
        if self.api_key and scope["path"] not in PUBLIC_PATHS:
            auth = headers.get("authorization", "")
            given = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
            if not hmac.compare_digest(given.encode(), self.api_key.encode()):
                return await _send_error(send, 401, "missing or wrong API key (send 'Authorization: Bearer KEY')")
        n = headers.get("content-length")
        if n is not None and (not n.isdigit() or int(n) > self.max_body):
            return await _send_error(send, 413, f"request body over {self.max_body // 1024} KiB")
        body, more = b"", True
        while more:  # read the whole body first, counting bytes as they come
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
            if len(body) > self.max_body:
                return await _send_error(send, 413, f"request body over {self.max_body // 1024} KiB")
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)
