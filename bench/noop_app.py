"""The framework ceiling: a raw ASGI app that does the least a JSON POST endpoint can do.

It reads the whole body, decodes it with msgspec and answers a small JSON object,
served by uvicorn exactly as `pushgate serve` is (uvloop, httptools, access log off,
one process). Whatever pushgate does beyond this is pushgate's own cost.

    python bench/noop_app.py --port 8099
"""

from __future__ import annotations

import argparse
from typing import Any

import msgspec

_decode = msgspec.json.decode
_encode = msgspec.json.encode
_HEADERS = [(b"content-type", b"application/json")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    status, answer = 200, {"ok": True, "bytes": len(body)}
    if body:
        try:
            decoded = _decode(body)
        except msgspec.DecodeError:
            status, answer = 400, {"error": "invalid_json"}
        else:
            if isinstance(decoded, dict):
                answer["notifications"] = len(decoded.get("notifications") or ())
    payload = _encode(answer)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*_HEADERS, (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def main() -> None:
    import sys

    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args()
    # The same options as pushgate's `serve` (src/pushgate/cli.py).
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        proxy_headers=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
