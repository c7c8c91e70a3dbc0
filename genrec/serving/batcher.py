"""Between the HTTP handlers and the engine: one batching worker thread (it takes whatever has
queued up, up to `max_batch`, and hands it to the engine in one call, so vLLM batches concurrent
clients), and the `Service` the routes call: a query with its timeout, a chat turn answered."""
from __future__ import annotations

import asyncio
import logging
import queue
import threading
from concurrent.futures import Future

from genrec.recommender import Query, RecommenderError
from genrec.serving.chat import Router
from genrec.serving.engine import Engine
from genrec.serving.reply import Replier

log = logging.getLogger("genrec.serve")


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


class Service:
    """What the routes share: the recommender, the chat router and the batcher, with a timeout."""

    def __init__(self, engine: Engine, timeout_s: float = 60.0, max_batch: int = 32):
        self.engine, self.rec, self.timeout_s = engine, engine.rec, timeout_s
        self.router = Router(self.rec.ds)
        self.replier = Replier(self)
        self.batcher = Batcher(engine, max_batch)

    async def raw(self, q: Query):
        """Run a query through the batcher: its raw result (504 on timeout, 500 on an engine failure)."""
        try:
            return await asyncio.wait_for(asyncio.wrap_future(self.batcher.submit(q)), self.timeout_s)
        except asyncio.TimeoutError:
            raise APIError(504, f"the engine did not answer within {self.timeout_s:g} s") from None
        except RecommenderError:
            raise
        except Exception as e:
            log.error("engine error", exc_info=e)
            raise APIError(500, "the engine failed on this request (details are in the server log)") from None

    async def answer(self, q: Query):
        return self.rec.answer(q, await self.raw(q))

    async def chat_reply(self, messages: list[dict], user_hint: str | None) -> dict:
        """{"content": text, "genrec": {...}} for the latest user message."""
        intent, meta = self.replier.start(messages, user_hint)
        try:
            content = await self.replier.run(intent, meta)
        except RecommenderError as e:
            content = f"Sorry: {e}"
        except APIError as e:
            content = f"Sorry: {e.message}"
        return {"content": content, "genrec": meta}


def pieces(text: str, size: int = 3) -> list[str]:
    """The reply in small word groups, for streaming (a piece keeps its trailing space/newline)."""
    import re
    words = re.findall(r"\S+\s*", text)
    return ["".join(words[i:i + size]) for i in range(0, len(words), size)] or [text]
