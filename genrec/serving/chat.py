"""Plain language -> a task family, by rules; titles -> item IDs, by fuzzy matching.

Why rules and not the model: the routing has to be right every time and explainable
("which of Heat, Casino and Fargo" must become a direct-task query over exactly those
three items), it costs nothing on a CPU, and a 135M backbone tuned on ID prompts is not
a reliable intent classifier. The model does the recommending; the rules only decide
which of its tasks to call and with what.

    sequential   "what should I watch next?", "recommend 3 movies", "something older?"
    direct       "pick the best of Heat, Casino and Fargo for me", "which: 50 or 181?"
    explanation  "why would user 42 like Toy Story?", "why that one?"
    free answer  anything else goes to `ask` as free text

Context across turns comes from the conversation itself (OpenAI-style messages): the
user named earlier (or the request's `user` field) and the items shown in earlier
replies, which are written as "[item ID]" so a follow-up ("something older?", "why
the first one?", "more") can use them.
"""
from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from genrec.data.dataset import PreparedDataset

MAX_MESSAGE_CHARS = 2000
SHOWN = re.compile(r"\[item ([^\]\s]+)\]")
USER = re.compile(r"\buser[\s_#:-]*([A-Za-z0-9][\w.-]*)", re.I)
WHY = re.compile(r"\b(why|explain|reason)\b", re.I)
PICK = re.compile(r"\b(pick|choose|which|between|best of|rank|prefer)\b", re.I)
RECOMMEND = re.compile(r"\b(recommend\w*|suggest\w*|next|what should|watch|see|something|anything|more|another|"
                       r"else|older|newer|recent|classic|top \d+|\d+ (?:movies|films|items|more))\b", re.I)
OLDER = re.compile(r"\b(older|earlier|classic|old)\b", re.I)
NEWER = re.compile(r"\b(newer|recent|latest|new|modern)\b", re.I)
MORE = re.compile(r"\b(more|another|else|other|different)\b", re.I)
NUMBER = re.compile(r"\b(?:top\s+)?(\d{1,2})\s+(?:movies|films|items|picks|more|recommendations|suggestions)\b|"
                    r"\btop\s+(\d{1,2})\b", re.I)
ORDINAL = {"first": 0, "second": 1, "third": 2, "fourth": 3, "fifth": 4, "1st": 0, "2nd": 1, "3rd": 2,
           "last": -1, "that": 0, "this": 0, "it": 0}
DEFAULT_K, MAX_K = 5, 20


def normalise(title: str) -> str:
    """'Usual Suspects, The (1995)' -> 'the usual suspects' (accents, case, year and articles folded)."""
    t = unicodedata.normalize("NFKD", str(title)).encode("ascii", "ignore").decode()
    t = re.sub(r"\(\s*\d{4}\s*\)", " ", t)
    m = re.match(r"^(.*),\s*(the|a|an|la|le|les|il|el|der|die|das)\s*$", t.strip(), re.I)
    if m:
        t = f"{m.group(2)} {m.group(1)}"
    t = re.sub(r"[^a-z0-9]+", " ", t.lower())
    return " ".join(t.split())


class TitleIndex:
    """Resolve what a person types (an ID, an exact or a misspelt title) to an item index."""

    def __init__(self, ds: PreparedDataset):
        self.ds = ds
        self.by_norm: dict[str, list[int]] = {}
        for i in range(ds.n_items):
            t = ds.items["title"].iat[i]
            if isinstance(t, str) and t.strip():
                self.by_norm.setdefault(normalise(t), []).append(i)
        self.names = list(self.by_norm)
        self.counts = np.bincount(ds.interactions["item"].to_numpy(), minlength=ds.n_items)

    def resolve(self, text: str) -> int | None:
        text = text.strip().strip("\"'“”‘’").strip()
        if not text:
            return None
        found = self.ds.find_item(text)  # the item's own ID, or the model's <item_...> name
        if found is not None:
            return found
        m = re.fullmatch(r"item[\s_#:-]*([\w.-]+)", text, re.I)
        if m and self.ds.find_item(m.group(1)) is not None:
            return self.ds.find_item(m.group(1))
        n = normalise(text)
        if not n:
            return None
        if n in self.by_norm:
            return self._most_popular(self.by_norm[n])
        hits = difflib.get_close_matches(n, self.names, n=1, cutoff=0.8)
        if hits:
            return self._most_popular(self.by_norm[hits[0]])
        starts = [name for name in self.names if name.startswith(n + " ") or name.endswith(" " + n)]
        if len(n) >= 4 and starts:
            return self._most_popular([i for s in starts for i in self.by_norm[s]])
        return None

    def _most_popular(self, items: list[int]) -> int:
        if len(items) == 1:
            return items[0]
        return max(items, key=lambda i: (int(self.counts[i]), -i))  # the better-known film of a shared title


@dataclass
class Intent:
    kind: str  # sequential | direct | explanation | free | say
    user: str | None = None
    k: int = DEFAULT_K
    items: list[int] = field(default_factory=list)  # direct: candidates; explanation: the item
    exclude: list[int] = field(default_factory=list)  # items already shown (for "more")
    era: str | None = None  # "older" | "newer" than what was shown
    genre: str | None = None
    text: str = ""  # free: the prompt; say: what to tell the person
    unresolved: list[str] = field(default_factory=list)


def _split_items(segment: str) -> list[str]:
    segment = re.sub(r"\bfor me\b|\bplease\b|\?|!", " ", segment, flags=re.I)
    parts = re.split(r",|;|/|\bor\b|\band\b|\bvs\.?\b|\bversus\b", segment, flags=re.I)
    return [p.strip(" .:") for p in parts if p.strip(" .:")]


class Router:
    def __init__(self, ds: PreparedDataset):
        self.ds = ds
        self.titles = TitleIndex(ds)
        cats = set()
        if "category" in ds.items:
            for c in ds.items["category"].dropna():
                cats.update(x.strip().lower() for x in re.split(r"[|,;]", str(c)) if x.strip())
        self.genres = sorted(cats, key=len, reverse=True)

    # ------------------------------------------------------------------ context
    def _user(self, messages: list[dict], hint: str | None) -> tuple[str | None, str | None]:
        """(known user id or None, an unknown user the latest message names)."""
        for j, m in enumerate(reversed(messages)):
            if m.get("role") != "user":
                continue
            for found in USER.findall(str(m.get("content", ""))):
                key = found.rstrip(".,?!")
                if self.ds.find_user(key) is not None:
                    return key, None
                if j == 0:
                    return None, key
        if hint is not None:
            h = str(hint).strip()
            return (h, None) if self.ds.find_user(h) is not None else (None, h)
        return None, None

    def _shown(self, messages: list[dict]) -> list[list[int]]:
        """Items of each earlier assistant reply, newest last."""
        out = []
        for m in messages[:-1]:
            if m.get("role") == "assistant":
                ids = list(dict.fromkeys(  # in order of first mention ("the best is X" then the list)
                    self.ds.item_by_raw[x] for x in SHOWN.findall(str(m.get("content", ""))) if x in self.ds.item_by_raw))
                if ids:
                    out.append(ids)
        return out

    def _mentions(self, text: str) -> tuple[list[int], list[str]]:
        """Items named after 'of'/'between'/'among'/':' (or the whole message), and what did not resolve."""
        m = re.search(r"\b(?:of|between|among|from)\b|:", text, re.I)
        seg = text[m.end():] if m else text
        found, missing = [], []
        for part in _split_items(seg):
            i = self.titles.resolve(part)
            if i is None:
                missing.append(part)
            elif i not in found:
                found.append(i)
        return found, missing

    def _explained_item(self, text: str, shown: list[list[int]]) -> tuple[int | None, str | None]:
        m = re.search(r"\b(?:like|love|enjoy|want|watch|recommend(?:ed)?|about|explain|pick)\b\s+(.+?)\s*[?.!]*$",
                      text, re.I)
        tail = m.group(1) if m else ""
        tail = re.sub(r"^(the movie|the film|movie|film|item)\s+", "", tail.strip(), flags=re.I)
        words = tail.lower().split()
        if words and shown:  # "the first one", "that one", "it"
            w = [x for x in words if x not in ("the", "one", "movie", "film")]
            if len(w) == 1 and w[0] in ORDINAL:
                last = shown[-1]
                idx = ORDINAL[w[0]]
                return (last[idx] if -len(last) <= idx < len(last) else None), None
        if tail:
            i = self.titles.resolve(tail)
            return i, (None if i is not None else tail)
        if shown:
            return shown[-1][0], None
        return None, None

    # ------------------------------------------------------------------ routing
    def route(self, messages: list[dict], user_hint: str | None = None) -> Intent:
        if not messages or messages[-1].get("role") != "user":
            return Intent("say", text="Send a message as the user: ask for a recommendation, a pick between "
                                      "titles, or why someone would like a title.")
        text = str(messages[-1].get("content") or "").strip()
        if not text:
            return Intent("say", text="Your message is empty. Try: “what should I watch next?”")
        if len(text) > MAX_MESSAGE_CHARS:
            return Intent("say", text=f"That message is {len(text):,} characters long; please keep it under "
                                      f"{MAX_MESSAGE_CHARS:,}.")
        user, unknown = self._user(messages, user_hint)
        if unknown is not None:
            return Intent("say", text=f"I don't know user “{unknown}”. This dataset has {self.ds.n_users:,} users "
                                      f"with IDs like {', '.join(self.ds.user_raw_ids[:5])}.")
        body = USER.sub(" ", text)
        shown = self._shown(messages)
        if WHY.search(body):
            item, missing = self._explained_item(body, shown)
            if item is None:
                return Intent("say", text=(f"I couldn't find a title matching “{missing}”." if missing else
                                           "Which title should I explain? Name one, e.g. “why would I like "
                                           f"{self.ds.title(0)}?”"))
            return self._need_user(Intent("explanation", user=user, items=[item]))
        if PICK.search(body):
            found, missing = self._mentions(body)
            if missing and len(found) + len(missing) >= 2:
                return Intent("say", text="I couldn't find " + ", ".join(f"“{m}”" for m in missing) +
                              " in this catalogue. Check the spelling or use item IDs.", unresolved=missing)
            if len(found) >= 2:
                return self._need_user(Intent("direct", user=user, items=found))
        genre = next((g for g in self.genres if re.search(rf"\b{re.escape(g)}s?\b", body, re.I)), None)
        if RECOMMEND.search(body) or genre or (shown and (OLDER.search(body) or NEWER.search(body)
                                                          or MORE.search(body))):
            m = NUMBER.search(body)
            era = "older" if OLDER.search(body) else "newer" if NEWER.search(body) else None
            follow_up = bool(shown) and bool(MORE.search(body) or era or genre)
            k = min(int(m.group(1) or m.group(2)), MAX_K) if m else \
                (min(len(shown[-1]), MAX_K) if follow_up else DEFAULT_K)  # a follow-up keeps the list's length
            k = max(k, 1)
            exclude = [i for s in shown for i in s] if (MORE.search(body) or era) else []
            return self._need_user(Intent("sequential", user=user, k=k, era=era, genre=genre, exclude=exclude,
                                          items=shown[-1] if shown else []))
        return Intent("free", user=user, text=text)

    def _need_user(self, intent: Intent) -> Intent:
        if intent.user is None:
            return Intent("say", text="Who is this for? Pick a user (or say e.g. “for user "
                                      f"{self.ds.user_raw_ids[0]}”).")
        return intent

    # ------------------------------------------------------------------ refinement
    def pool_size(self, intent: Intent, n_unseen: int) -> int:
        """How many items to ask the model for before era/genre/"more" filtering."""
        extra = len(intent.exclude) + (intent.k * 20 if (intent.era or intent.genre) else 0)
        return max(1, min(n_unseen, intent.k + extra))

    def refine(self, intent: Intent, ranked: list[tuple[int, float]], history: list[int]) -> list[tuple[int, float]]:
        items = self.ds.items
        ex = set(intent.exclude)
        out = [(i, s) for i, s in ranked if i not in ex]
        if intent.era:
            ref = [items["year"].iat[i] for i in (intent.items or history)]
            ref = [int(y) for y in ref if not pd.isna(y)]
            if ref:
                mid = sorted(ref)[len(ref) // 2]

                def ok(i):
                    y = items["year"].iat[i]
                    return not pd.isna(y) and (int(y) < mid if intent.era == "older" else int(y) > mid)
                out = [(i, s) for i, s in out if ok(i)]
        if intent.genre:
            out = [(i, s) for i, s in out if intent.genre in str(items["category"].iat[i] or "").lower()]
        return out[:intent.k]
