"""The HTTP API's request bodies: every field typed and bounded, unknown fields refused (except on
the OpenAI-style route, whose clients send more than genrec uses)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from genrec.serving.batcher import APIError

MAX_K = 1000
MAX_CANDIDATES = 100
MAX_TEXT_CHARS = 8000
MAX_NEW_TOKENS = 128


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=MAX_TEXT_CHARS)

ID = Field(min_length=1, max_length=200)
# user: a dataset user's ID; history: item IDs that replace their history — or, with no user, the
# history of a person the dataset does not know (one of the two is needed)
USER = Field(None, min_length=1, max_length=200)
HISTORY = Field(None, max_length=MAX_K)

class RecommendReq(Strict):
    user: str | None = USER
    k: int = Field(10, ge=1, le=MAX_K)
    exclude_history: bool = True
    history: list[str] | None = HISTORY

class ChooseReq(Strict):
    user: str | None = USER
    candidates: list[str] = Field(min_length=1, max_length=MAX_CANDIDATES)
    history: list[str] | None = HISTORY

class ExplainReq(Strict):
    user: str | None = USER
    item: str = ID
    max_new_tokens: int = Field(40, ge=1, le=MAX_NEW_TOKENS)
    history: list[str] | None = HISTORY

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
