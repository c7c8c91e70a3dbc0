"""The HTTP API: `genrec serve <checkpoint> --engine vllm|hf`.

    POST /recommend  {"user": "23", "k": 10}                       -> {"items": [{id, title, year, score}]}
    POST /choose     {"user": "23", "candidates": ["50", "181"]}   -> {"items": [...best first]}
    POST /explain    {"user": "23", "item": "50"}                  -> {"text": "..."}
    POST /ask        {"text": "user_23 watched 50, 181. next?"}    -> {"answer": "item"|"text", ...}
    GET  /health, /items/{id}, /users/{id}
    POST /v1/chat/completions  (OpenAI-compatible, `stream: true` for server-sent events; the chat demo uses it)

Requests go through one batching worker: it takes whatever has queued up (up to
`max_batch`) and hands it to the engine in one call, so the vLLM engine batches
concurrent clients while the transformers engine runs them one by one. Every
request is validated first (sizes, types, known users/items) and answers 4xx with a
message; an engine failure answers 500 with a message and the server keeps serving.
"""

import asyncio
import json
import logging
import queue
import threading
import time
import uuid
from concurrent.futures import Future
from pathlib import Path
from typing import Literal

from genrec.recommender import Query, RecommenderError
from genrec.serving.chat import Router
from genrec.serving.engine import Engine
from genrec.serving.guard import Guard, check_listen

log = logging.getLogger("genrec.serve")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp"}

MAX_BODY_BYTES = 64 * 1024
MAX_K = 1000
MAX_CANDIDATES = 100
MAX_TEXT_CHARS = 8000
MAX_NEW_TOKENS = 128
MAX_CONVERSATION_CHARS = 64_000
STATIC = Path(__file__).parent / "static"


class APIError(Exception):
    """An HTTP error with its status and one-line message (timeouts, engine failures)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class Batcher:
    """One worker thread between the HTTP handlers and the engine."""

    def __init__(self, engine: Engine, max_batch: int = 32):
        self.engine, self.max_batch = engine, max_batch
        self.q: queue.Queue = queue.Queue()
        self.batches = 0
        self._t = threading.Thread(target=self._loop, name="genrec-batcher", daemon=True)
        self._t.start()

    def submit(self, query: Query) -> Future:
        f: Future = Future()
        self.q.put((query, f))
        return f

    def _loop(self) -> None:
        while True:
            first = self.q.get()
            if first is None:
                return
            work = [first]
            while len(work) < self.max_batch:
                try:
                    nxt = self.q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self.q.put(None)
                    break
                work.append(nxt)
            work = [(q, f) for q, f in work if f.set_running_or_notify_cancel()]
            if not work:
                continue
            try:
                results = self.engine.run_batch([q for q, _ in work])
            except Exception as e:  # the engine failed as a whole: every waiting request learns why
                results = [e] * len(work)
            self.batches += 1
            for (_, f), r in zip(work, results):
                if isinstance(r, BaseException):
                    f.set_exception(r)
                else:
                    f.set_result(r)

    def close(self) -> None:
        self.q.put(None)


def create_app(engine: Engine, timeout_s: float = 60.0, max_batch: int = 32, checkpoint: str = "",
               api_key: str | None = None, bind_host: str = "127.0.0.1", allow_hosts: tuple[str, ...] = ()):
    """The FastAPI app behind `Guard` (body limit as bytes arrive, Host allow-list, API key)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
    from pydantic import BaseModel, ConfigDict, Field

    rec = engine.rec
    router = Router(rec.ds)
    batcher = Batcher(engine, max_batch)

    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid", str_max_length=MAX_TEXT_CHARS)

    ID = Field(min_length=1, max_length=200)

    class RecommendReq(Strict):
        user: str = ID
        k: int = Field(10, ge=1, le=MAX_K)
        exclude_history: bool = True
        history: list[str] | None = Field(None, max_length=MAX_K)

    class ChooseReq(Strict):
        user: str = ID
        candidates: list[str] = Field(min_length=1, max_length=MAX_CANDIDATES)

    class ExplainReq(Strict):
        user: str = ID
        item: str = ID
        max_new_tokens: int = Field(40, ge=1, le=MAX_NEW_TOKENS)

    class AskReq(Strict):
        text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
        k: int = Field(5, ge=1, le=MAX_K)
        answer: Literal["auto", "item", "text"] = "auto"
        max_new_tokens: int = Field(48, ge=1, le=MAX_NEW_TOKENS)

    class Part(BaseModel):  # OpenAI's multi-part content; only text parts carry anything here
        model_config = ConfigDict(extra="allow")
        type: str
        text: str | None = Field(None, max_length=MAX_TEXT_CHARS)

    class Message(BaseModel):
        model_config = ConfigDict(extra="allow")
        role: Literal["system", "user", "assistant", "tool", "developer"]
        content: str | list[Part] | None = Field(None, max_length=MAX_TEXT_CHARS)

        def text(self) -> str:
            if not isinstance(self.content, list):
                return self.content or ""
            bad = [p.type for p in self.content if p.type != "text"]
            if bad:
                raise APIError(422, f"messages: only text content is supported, got a {bad[0]!r} part")
            return "\n".join(p.text or "" for p in self.content)

    class ChatReq(BaseModel):
        model_config = ConfigDict(extra="allow")  # OpenAI clients send more fields than we use
        model: str | None = None
        messages: list[Message] = Field(min_length=1, max_length=64)
        stream: bool = False
        user: str | None = Field(None, max_length=200)
        max_tokens: int | None = Field(None, ge=1, le=4096)

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

    async def raw(q: Query):
        """Run a query through the batcher: its raw result (504 on timeout, 500 on an engine failure)."""
        try:
            return await asyncio.wait_for(asyncio.wrap_future(batcher.submit(q)), timeout_s)
        except asyncio.TimeoutError:
            raise APIError(504, f"the engine did not answer within {timeout_s:g} s") from None
        except RecommenderError:
            raise
        except Exception as e:
            log.error("engine error", exc_info=e)
            raise APIError(500, "the engine failed on this request (details are in the server log)") from None

    async def answer(q: Query):
        return rec.answer(q, await raw(q))

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
        return {"count": rec.ds.n_users, "ids": rec.ds.user_ids[:max(0, min(limit, 10_000))]}

    @app.get("/users/{user_id}")
    async def user(user_id: str, limit: int = 50):
        hist = rec.history(user_id)
        limit = max(1, min(limit, 1000))
        return {"id": rec.ds.user_ids[rec.user_index(user_id)], "n_interactions": len(hist), "history": [card(i) for i in hist[-limit:]]}

    @app.post("/recommend")
    async def recommend(r: RecommendReq):
        return {"user": r.user, "items": await answer(rec.query_recommend(r.user, r.k, r.exclude_history, r.history))}

    @app.post("/choose")
    async def choose(r: ChooseReq):
        return {"user": r.user, "items": await answer(rec.query_choose(r.user, r.candidates))}

    @app.post("/explain")
    async def explain(r: ExplainReq):
        text = await answer(rec.query_explain(r.user, r.item, r.max_new_tokens))
        return {"user": r.user, "item": rec.item_info(rec.item_index(r.item)), "text": text}

    @app.post("/ask")
    async def ask(r: AskReq):
        return await answer(rec.query_ask(r.text, r.k, r.answer, r.max_new_tokens))

    # ------------------------------------------------------------------ chat
    async def chat_reply(messages: list[dict], user_hint: str | None) -> dict:
        """{"content": text, "genrec": {...}} for the latest user message."""
        intent = router.route(messages, user_hint)
        meta = {"task": intent.kind, "user": intent.user, "items": []}
        if intent.kind == "say":
            return {"content": intent.text, "genrec": meta}
        try:
            if intent.kind == "sequential":
                hist = rec.history(intent.user)
                pool = router.pool_size(intent, rec.ds.n_items - len(set(hist)))
                picked = router.refine(intent, await raw(rec.query_recommend(intent.user, pool)), hist)
                if not picked:
                    return {"content": "I found nothing that fits that among this user's top candidates. "
                                       "Try asking without the filter.", "genrec": meta}
                meta["items"] = [rec.item_info(i, s) for i, s in picked]
                what = (" older" if intent.era == "older" else " newer" if intent.era == "newer" else "") + \
                       (f" {intent.genre}" if intent.genre else "")
                head = f"Here {'is' if len(picked) == 1 else 'are'} {len(picked)}{what} pick" \
                       f"{'' if len(picked) == 1 else 's'} for user {intent.user}:"
                return {"content": head + "\n" + _lines(meta["items"]), "genrec": meta}
            if intent.kind == "direct":
                res = await answer(rec.query_choose(intent.user, [rec.ds.item_ids[i] for i in intent.items]))
                meta["items"] = res
                best = res[0]
                return {"content": f"For user {intent.user} the best of these is {best['title']} "
                                   f"[item {best['id']}]. Full ranking:\n" + _lines(res), "genrec": meta}
            if intent.kind == "explanation":
                iid = rec.ds.item_ids[intent.items[0]]
                reason = await answer(rec.query_explain(intent.user, iid)) or "(the model gave no reason)"
                meta["items"] = [rec.item_info(intent.items[0])]
                return {"content": f"Why user {intent.user} may like {rec.ds.title(intent.items[0])} "
                                   f"[item {iid}]: {reason}", "genrec": meta}
            text = intent.text if intent.user is None or intent.user in intent.text else \
                f"user_{intent.user}: {intent.text}"
            res = await answer(rec.query_ask(text, 5, "text"))
            return {"content": res["text"] or "I have no answer to that; try asking for a recommendation.",
                    "genrec": meta}
        except RecommenderError as e:
            return {"content": f"Sorry: {e}", "genrec": meta}
        except APIError as e:
            return {"content": f"Sorry: {e.message}", "genrec": meta}

    @app.post("/v1/chat/completions")
    async def chat(r: ChatReq):
        messages = [{"role": m.role, "content": m.text()} for m in r.messages]
        if sum(len(m["content"]) for m in messages) > MAX_CONVERSATION_CHARS:
            return error(413, "conversation too long; start a new one")
        reply = await chat_reply(messages, r.user)
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        model = r.model or f"genrec-{engine.name}"
        if not r.stream:
            return {"id": cid, "object": "chat.completion", "created": created, "model": model,
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": reply["content"]}}],
                    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                    "genrec": reply["genrec"]}

        async def events():
            def chunk(delta: dict, finish=None, extra=None):
                d = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
                if extra:
                    d["genrec"] = extra
                return f"data: {json.dumps(d)}\n\n"
            yield chunk({"role": "assistant", "content": ""})
            for piece in _pieces(reply["content"]):
                yield chunk({"content": piece})
                await asyncio.sleep(0.01)
            yield chunk({}, "stop", reply["genrec"])
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


def _lines(items: list[dict]) -> str:
    out = []
    for n, x in enumerate(items, 1):
        year = f" ({x['year']})" if "year" in x and f"({x['year']})" not in x["title"] else ""
        score = f" — score {x['score']:.3f}" if "score" in x else ""
        out.append(f"{n}. {x['title']}{year} [item {x['id']}]{score}")
    return "\n".join(out)


def _pieces(text: str, size: int = 3) -> list[str]:
    """The reply in small word groups, for streaming (a piece keeps its trailing space/newline)."""
    import re
    words = re.findall(r"\S+\s*", text)
    return ["".join(words[i:i + size]) for i in range(0, len(words), size)] or [text]


def serve(engine: Engine, host: str = "127.0.0.1", port: int = 8000, timeout_s: float = 60.0,
          max_batch: int = 32, checkpoint: str = "", log_level: str = "warning", api_key: str | None = None,
          allow_hosts: tuple[str, ...] = ()) -> None:
    import uvicorn
    check_listen(host, api_key)
    app = create_app(engine, timeout_s=timeout_s, max_batch=max_batch, checkpoint=checkpoint, api_key=api_key,
                     bind_host=host, allow_hosts=allow_hosts)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_keep_alive=5)
