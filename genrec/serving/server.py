"""The HTTP API: `genrec serve <checkpoint> --engine vllm|hf`.

    POST /recommend  {"user": "23", "k": 10}                       -> {"items": [{id, title, year, score}]}
    POST /choose     {"user": "23", "candidates": ["50", "181"]}   -> {"items": [...best first]}
    POST /explain    {"user": "23", "item": "50"}                  -> {"text": "..."}
    POST /ask        {"text": "user_23 watched 50, 181. next?"}    -> {"answer": "item"|"text", ...}
    GET  /health, /items/{id}, /users/{id}
    POST /v1/chat/completions  (OpenAI-compatible, `stream: true` for server-sent events; the chat demo uses it)

Requests go through one batching worker (genrec.serving.batcher); bodies are the models of
genrec.serving.schemas; genrec.serving.guard checks size, Host and key first. Every
request is validated first (sizes, types, known users/items) and answers 4xx with a
message; an engine failure answers 500 with a message and the server keeps serving.
"""

import asyncio
import json
import logging
import time
import uuid
from pathlib import Path

from genrec.recommender import RecommenderError
from genrec.serving.batcher import APIError, Service, pieces
from genrec.serving.engine import Engine
from genrec.serving.guard import Guard, check_listen

log = logging.getLogger("genrec.serve")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp"}

MAX_BODY_BYTES = 64 * 1024
MAX_CONVERSATION_CHARS = 64_000
STATIC = Path(__file__).parent / "static"


def create_app(engine: Engine, timeout_s: float = 60.0, max_batch: int = 32, checkpoint: str = "",
               api_key: str | None = None, bind_host: str = "127.0.0.1", allow_hosts: tuple[str, ...] = ()):
    """The FastAPI app behind `Guard` (body limit as bytes arrive, Host allow-list, API key)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse

    from genrec.serving.schemas import AskReq, ChatReq, ChooseReq, ExplainReq, RecommendReq

    svc = Service(engine, timeout_s, max_batch)
    rec, router, batcher = svc.rec, svc.router, svc.batcher
    answer = svc.answer

    app = FastAPI(title="genrec", version="0.1.0", docs_url=None, redoc_url=None,
                  description="Generative recommendation with adapter-tuned language models")
    app.state.engine, app.state.batcher, app.state.router = engine, batcher, router
    app.add_middleware(Guard, max_body=MAX_BODY_BYTES, bind_host=bind_host, api_key=api_key,
                       allow_hosts=tuple(allow_hosts))

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": {"message": message, "status": status}}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):  # 404/405 in the one error shape
        msg = {404: f"no route {request.url.path}", 405: f"{request.method} is not allowed on {request.url.path}"}
        return error(exc.status_code, msg.get(exc.status_code, str(exc.detail)))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        errs = exc.errors()
        parts = []
        for e in errs[:3]:
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return error(422, "; ".join(parts) or "invalid request")

    @app.exception_handler(RecommenderError)
    async def bad_name(request: Request, exc: RecommenderError):  # unknown user/item, impossible k, ...
        msg = str(exc)
        return error(404 if msg.startswith(("unknown user", "unknown item")) else 400, msg)

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError):
        return error(exc.status, exc.message)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception):  # the details go to the server log, not the client
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return error(500, "internal error (details are in the server log)")

    def card(i: int) -> dict:
        """An item as the page shows it: id, title, year, genres, and an image URL where there is one."""
        info = rec.item_info(i)
        cat = rec.ds.items["category"].iat[i]
        if isinstance(cat, str) and cat:
            info["genres"] = cat
        if isinstance(rec.ds.items["image"].iat[i], str):
            info["image"] = f"/items/{info['id']}/image"
        return info

    @app.get("/health")
    async def health():
        return {"status": "ok", "engine": engine.name, "checkpoint": checkpoint, "users": rec.ds.n_users,
                "items": rec.ds.n_items, "item_tokens": rec.model.codec.mode, "backbone": rec.model.recipe.model.backbone,
                "queued": batcher.q.qsize()}

    @app.get("/items/{item_id}")
    async def item(item_id: str):
        return card(rec.item_index(item_id))

    @app.get("/items/{item_id}/image")
    async def item_image(item_id: str):
        """Only files the feature step read as images, lying under the dataset's images folder."""
        i = rec.item_index(item_id)
        images_dir = (rec.ds.meta.get("config") or {}).get("images_path")
        images_dir = Path(images_dir).resolve() if images_dir else None
        p = rec.ds.items["image"].iat[i]
        if not isinstance(p, str) or images_dir is None or not rec.images or i not in rec.images:
            return error(404, f"item {item_id} has no image")
        path = Path(p).resolve()
        if images_dir not in path.parents or path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            return error(404, f"item {item_id} has no image")
        return FileResponse(path)

    @app.get("/users")
    async def users(limit: int = 100):
        return {"count": rec.ds.n_users, "ids": rec.ds.user_raw_ids[:max(0, min(limit, 10_000))]}

    @app.get("/users/{user_id}")
    async def user(user_id: str, limit: int = 50):
        hist = rec.history(user_id)
        limit = max(1, min(limit, 1000))
        u = rec.user_index(user_id)
        return {"id": rec.ds.user_raw_ids[u], "model_id": rec.ds.user_ids[u], "n_interactions": len(hist),
                "history": [card(i) for i in hist[-limit:]]}

    @app.post("/recommend")
    async def recommend(r: RecommendReq):
        return {"user": r.user, "items": await answer(rec.query_recommend(r.user, r.k, r.exclude_history, r.history))}

    @app.post("/choose")
    async def choose(r: ChooseReq):
        return {"user": r.user, "items": await answer(rec.query_choose(r.user, r.candidates, r.history))}

    @app.post("/explain")
    async def explain(r: ExplainReq):
        text = await answer(rec.query_explain(r.user, r.item, r.max_new_tokens, r.history))
        return {"user": r.user, "item": rec.item_info(rec.item_index(r.item)), "text": text}

    @app.post("/ask")
    async def ask(r: AskReq):
        return await answer(rec.query_ask(r.text, r.k, r.answer, r.max_new_tokens))

    # ------------------------------------------------------------------ chat (OpenAI-style)
    # The served checkpoint is one model; "genrec" is accepted as its alias (the chat page sends it).
    model_id = f"genrec-{rec.model.recipe.name}"
    started = int(time.time())

    def n_tokens(text: str) -> int:
        return len(rec.model.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": model_id, "object": "model", "created": started,
                                            "owned_by": "genrec"}]}

    @app.post("/v1/chat/completions")
    async def chat(r: ChatReq):
        if r.model not in (None, "", model_id, "genrec"):
            return JSONResponse({"error": {"message": f"The model '{r.model}' does not exist (this server serves "
                                                      f"'{model_id}'; GET /v1/models)", "status": 404,
                                           "type": "invalid_request_error", "param": "model",
                                           "code": "model_not_found"}}, status_code=404)
        # system/developer messages are not sent to the model: the rule router reads the user's turns
        # (and earlier replies for context); a 135M backbone tuned on ID prompts follows no instructions
        messages = [{"role": m.role, "content": m.text()} for m in r.messages]
        if sum(len(m["content"]) for m in messages) > MAX_CONVERSATION_CHARS:
            return error(413, "conversation too long; start a new one")
        reply = await svc.chat_reply(messages, r.user)
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        model = model_id
        prompt_t = sum(n_tokens(m["content"]) for m in messages if m["role"] in ("user", "assistant"))
        usage = {"prompt_tokens": prompt_t, "completion_tokens": n_tokens(reply["content"])}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if not r.stream:
            return {"id": cid, "object": "chat.completion", "created": created, "model": model,
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": reply["content"]}}],
                    "usage": usage, "genrec": reply["genrec"]}

        async def events():
            def chunk(delta: dict, finish=None, extra=None):
                d = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
                if extra:
                    d["genrec"] = extra
                return f"data: {json.dumps(d)}\n\n"
            yield chunk({"role": "assistant", "content": ""})
            for piece in pieces(reply["content"]):
                yield chunk({"content": piece})
                await asyncio.sleep(0.01)
            last = json.loads(chunk({}, "stop", reply["genrec"])[6:])
            last["usage"] = usage  # as OpenAI's stream_options.include_usage puts it, on the last chunk
            yield f"data: {json.dumps(last)}\n\n"
            yield "data: [DONE]\n\n"
        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return (STATIC / "chat.html").read_text(encoding="utf-8")

    @app.get("/favicon.ico")
    async def favicon():
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    @app.get("/docs", response_class=HTMLResponse)
    async def docs():  # the routes and their request fields, from the OpenAPI schema: no CDN needed
        return api_docs(app.openapi())

    return app


def api_docs(spec: dict) -> str:
    """A plain HTML page of the API from its OpenAPI schema (works offline; /openapi.json has it all)."""
    from html import escape
    schemas = spec.get("components", {}).get("schemas", {})
    rows = []
    for path, ops in spec.get("paths", {}).items():
        for method, op in ops.items():
            ref = (op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
                   .get("$ref", ""))
            fields = schemas.get(ref.rsplit("/", 1)[-1], {}).get("properties", {}) if ref else {}
            body = ", ".join(f"{escape(k)}: {escape(str(v.get('type', 'object')))}" for k, v in fields.items())
            rows.append(f"<tr><td>{method.upper()}</td><td><code>{escape(path)}</code></td>"
                        f"<td>{escape(op.get('summary', ''))}</td><td>{body}</td></tr>")
    return ("<!doctype html><meta charset=utf-8><title>genrec API</title><h1>genrec API</h1>"
            "<p>Errors: <code>{\"error\": {\"message\", \"status\"}}</code>. With an API key, send "
            "<code>Authorization: Bearer KEY</code>. Full schema: <a href=/openapi.json>/openapi.json</a>.</p>"
            "<table border=1 cellpadding=4><tr><th>method</th><th>path</th><th>what</th><th>JSON body</th></tr>"
            + "".join(rows) + "</table>")


def serve(engine: Engine, host: str = "127.0.0.1", port: int = 8000, timeout_s: float = 60.0,
          max_batch: int = 32, checkpoint: str = "", log_level: str = "warning", api_key: str | None = None,
          allow_hosts: tuple[str, ...] = ()) -> None:
    import uvicorn
    check_listen(host, api_key)
    app = create_app(engine, timeout_s=timeout_s, max_batch=max_batch, checkpoint=checkpoint, api_key=api_key,
                     bind_host=host, allow_hosts=allow_hosts)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_keep_alive=5)
