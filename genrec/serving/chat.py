"""Plain language -> a task family and its constraints, by rules (titles and taste: `taste`).

Why rules and not the model: the routing has to be right every time and explainable
("which of Heat, Casino and Fargo" must become a direct-task query over exactly those
three items), it costs nothing on a CPU, and a 135M backbone tuned on ID prompts is not
a reliable intent classifier. The model does the recommending; the rules only decide
which of its tasks to call and with what.

    sequential   "what should I watch next?", "recommend 3", "I loved Heat, what next?",
                 "something like Toy Story", "any comedies?", "something older?", "more", "not horror"
    direct       "pick the best of Heat, Casino and Fargo for me", "which: 50 or 181?"
    explanation  "why would user 42 like Toy Story?", "why that one?"
    why_not      "why not Heat?", "why didn't you recommend Casino?"
    free answer  anything else goes to `ask` as free text

Context across turns comes from the conversation itself (OpenAI-style messages): the user
named earlier (or the request's `user` field); the titles the person said they liked (added
to a known user's history; for an anonymous caller, the whole history) or disliked (never
shown), and genres ruled out; and the items shown in earlier replies, written as
"[item ID]" so a follow-up ("something older?", "why the first one?", "more") can use them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd

from genrec.data.dataset import PreparedDataset
from genrec.serving.taste import Genres, Said, TitleIndex, count, normalise, read_taste, split_titles, years

__all__ = ["Intent", "Router", "TitleIndex", "normalise"]

MAX_MESSAGE_CHARS = 2000
SHOWN = re.compile(r"\[item ([^\]\s]+)\]")
USER = re.compile(r"\b(?:for\s+)?user(?:[\s_#:-]+|(?=\d))([A-Za-z0-9][\w.-]*)", re.I)
WHY_NOT = re.compile(r"\bwhy\s+(?:not|no|didn'?t you|did you not|wasn'?t|isn'?t|haven'?t you|is there no)\b", re.I)
WHY = re.compile(r"\b(why|explain|reason)\b", re.I)
PICK = re.compile(r"\b(pick|choose|which|between|best of|rank|prefer)\b", re.I)
RECOMMEND = re.compile(r"\b(recommend\w*|suggest\w*|next|what should|watch|see|something|anything|more|another|"
                       r"else|older|newer|recent|classic|top \d+|\d+ (?:movies|films|items|more)|ideas?|options?)\b", re.I)
OLDER = re.compile(r"\b(older|earlier|classic|old)\b", re.I)
NEWER = re.compile(r"\b(newer|recent|latest|new|modern)\b", re.I)
MORE = re.compile(r"\b(more|another|else|other|different|others)\b", re.I)
ORDINAL = {"first": 0, "second": 1, "third": 2, "fourth": 3, "fifth": 4, "1st": 0, "2nd": 1, "3rd": 2,
           "last": -1, "that": 0, "this": 0, "it": 0}
DEFAULT_K, MAX_K = 5, 20


@dataclass
class Intent:
    kind: str  # sequential | direct | explanation | why_not | free | say
    user: str | None = None  # a dataset user (their ID in the files); None: an anonymous caller
    k: int = DEFAULT_K
    items: list[int] = field(default_factory=list)  # direct: candidates; explanation: the item; else: under discussion
    exclude: list[int] = field(default_factory=list)  # never shown: earlier picks (for "more"), disliked titles
    likes: list[int] = field(default_factory=list)  # titles the person said they liked: added to the history
    dislikes: list[int] = field(default_factory=list)  # titles the person said they did not like: never shown
    era: str | None = None  # "older" | "newer" than the items under discussion
    years: tuple[int, int] | None = None  # "from the 80s", "before 1980"
    genres: list[str] = field(default_factory=list)  # every one must hold
    avoid: list[str] = field(default_factory=list)  # none may hold (said anywhere in the conversation)
    text: str = ""  # free: the prompt; say: what to tell the person
    unresolved: list[str] = field(default_factory=list)


class Router:
    def __init__(self, ds: PreparedDataset):
        self.ds = ds
        self.titles = TitleIndex(ds)
        self.genre_words = Genres(ds)

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
                if j == 0 and re.search(r"[\d_.-]", key):  # looks like an ID (not "user is", "user who")
                    return None, key
        if hint is not None and str(hint).strip():
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

    def _taste(self, messages: list[dict]) -> tuple[list[int], list[int], list[str], list[Said]]:
        """(liked titles, disliked titles, genres ruled out) over the person's turns, later turns winning,
        and what each turn said (why-questions name titles without liking them: skipped)."""
        likes: dict[int, bool] = {}
        avoid: list[str] = []
        turns = []
        for m in messages:
            if m.get("role") != "user":
                continue
            text = USER.sub(" ", str(m.get("content") or ""))[:MAX_MESSAGE_CHARS]
            said = Said(rest=text) if WHY.search(text) else read_taste(text, self.titles, self.genre_words)
            turns.append(said)
            for i in said.likes:
                likes.pop(i, None)
                likes[i] = True
            for i in said.dislikes:
                likes.pop(i, None)
                likes[i] = False
            avoid = [g for g in avoid if g not in said.genres] + [g for g in said.avoid if g not in avoid]
        return [i for i, v in likes.items() if v], [i for i, v in likes.items() if not v], avoid, turns

    def _mentions(self, text: str) -> tuple[list[int], list[str]]:
        """Items named after 'of'/'between'/'among'/':' (or the whole message), and what did not resolve."""
        m = re.search(r"\b(?:of|between|among|from)\b|:", text, re.I)
        seg = text[m.end():] if m else text
        seg = re.sub(r"\bfor me\b|\bplease\b|\?|!|\bvs\.?\b|\bversus\b", ",", seg, flags=re.I)
        found, missing = [], []
        for part, i, _ in split_titles(seg, self.titles):
            if i is None and PICK.search(part):  # "which do you prefer", "which one"
                continue
            if i is None:
                missing.append(part)
            elif i not in found:
                found.append(i)
        return found, missing

    def _explained_item(self, text: str, shown: list[list[int]]) -> tuple[int | None, str | None]:
        m = WHY_NOT.search(text)
        if m:
            tail = text[m.end():]
            tail = re.sub(r"^\s*(?:recommend(?:ed)?|suggest(?:ed)?|show(?:n)?|pick(?:ed)?|include(?:d)?|"
                          r"(?:it\s+)?(?:on|in)\s+the\s+list)\s*", "", tail, flags=re.I)
            tail = re.sub(r"\s*(?:to me|for me|instead|on the list|in the list)?\s*[?.!]*\s*$", "", tail, flags=re.I)
        else:
            m = re.search(r"\b(?:like|love|enjoy|want|watch|recommend(?:ed)?|about|explain|pick)\b\s+(.+?)\s*[?.!]*$",
                          text, re.I) or re.search(r"\b(?:why|reason)\b\s+(?:for\s+|is\s+)?(.+?)\s*[?.!]*$", text, re.I)
            tail = m.group(1) if m else ""
        tail = re.sub(r"^(the movie|the film|movie|film|item)\s+", "", tail.strip(), flags=re.I)
        words = tail.lower().split()
        if words and shown:  # "the first one", "that one", "it"
            w = [x for x in words if x not in ("the", "one", "movie", "film")]
            if len(w) == 1 and w[0] in ORDINAL:
                lists = [s for s in shown if len(s) > 1]  # "the second one": of the latest list shown
                last = lists[-1] if lists and w[0] not in ("that", "this", "it") else shown[-1]
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
                                      f"with IDs like {', '.join(self.ds.user_raw_ids[:5])}; or just tell me "
                                      "a few titles you liked.")
        body = USER.sub(" ", text)
        shown = self._shown(messages)
        likes, dislikes, avoid, turns = self._taste(messages)
        said = turns[-1]
        if WHY.search(body):
            item, missing = self._explained_item(body, shown)
            if item is None:
                return Intent("say", text=(f"I couldn't find a title matching “{missing}”." if missing else
                                           "Which title should I explain? Name one, e.g. “why would I like "
                                           f"{self.ds.title(0)}?”"))
            kind = "why_not" if WHY_NOT.search(body) else "explanation"
            return Intent(kind, user=user, items=[item], likes=likes, dislikes=dislikes, avoid=avoid)
        if PICK.search(body) and not (said.likes or said.dislikes):
            found, missing = self._mentions(body)
            if missing and len(found) + len(missing) >= 2:
                return Intent("say", text="I couldn't find " + ", ".join(f"“{m}”" for m in missing) +
                              " in this catalogue. Check the spelling or use item IDs.", unresolved=missing)
            if len(found) >= 2:
                return Intent("direct", user=user, items=found, likes=likes, dislikes=dislikes)
        rest = said.rest
        era = "older" if OLDER.search(rest) else "newer" if NEWER.search(rest) else None
        span = years(rest)
        n = count(rest)
        more = bool(MORE.search(rest))
        asks = RECOMMEND.search(rest) or said.genres or said.avoid or said.likes or said.dislikes or span or \
            n is not None or (shown and (era or more))
        if not asks:
            return Intent("free", user=user, text=text, likes=likes, dislikes=dislikes)
        follow_up = bool(shown) and bool(more or era or said.genres or said.avoid or said.dislikes or span)
        k = n if n is not None else (len(shown[-1]) if follow_up else DEFAULT_K)  # a follow-up keeps the list's length
        genres = list(said.genres)
        if more and not (genres or span or era) and len(turns) >= 2 and shown:  # "more" keeps the last constraints
            prev = turns[-2]
            genres, span = list(prev.genres), years(prev.rest)
        exclude = ([i for s in shown for i in s] if (more or era or said.dislikes or said.avoid) else []) + dislikes
        return Intent("sequential", user=user, k=max(1, min(k, MAX_K)), era=era, years=span, genres=genres,
                      avoid=avoid, exclude=list(dict.fromkeys(exclude)), likes=likes, dislikes=dislikes,
                      items=shown[-1] if shown and not said.likes else list(said.likes), unresolved=said.unresolved)

    # ------------------------------------------------------------------ refinement
    def filtered(self, intent: Intent) -> bool:
        return bool(intent.era or intent.years or intent.genres or intent.avoid)

    def pool_size(self, intent: Intent, n_unseen: int, whole: bool = False) -> int:
        """How many items to ask the model for before filtering (whole: the whole catalogue costs no
        more than a few, as with atomic item tokens)."""
        if whole and self.filtered(intent):
            return max(1, n_unseen)
        extra = len(intent.exclude) + (intent.k * 20 if self.filtered(intent) else 0)
        return max(1, min(n_unseen, intent.k + extra))

    def categories(self, i: int) -> set[str]:
        return {c.strip().lower() for c in re.split(r"[|,;]", str(self.ds.items["category"].iat[i] or ""))}

    def refine(self, intent: Intent, ranked: list[tuple[int, float]], history: list[int]) -> list[tuple[int, float]]:
        """The ranked items that meet the intent's constraints, best first, at most k."""
        year = self.ds.items["year"]
        ex = set(intent.exclude)
        out = [(i, s) for i, s in ranked if i not in ex]
        if intent.era:
            ref = [int(y) for y in (year.iat[i] for i in (intent.items or history)) if not pd.isna(y)]
            if ref:  # than every item under discussion; than the middle of a whole history
                mid = sorted(ref)[len(ref) // 2]
                bound = (min(ref) if intent.era == "older" else max(ref)) if intent.items else mid
                out = [(i, s) for i, s in out if not pd.isna(year.iat[i]) and
                       (int(year.iat[i]) < bound if intent.era == "older" else int(year.iat[i]) > bound)]
        if intent.years:
            lo, hi = intent.years
            out = [(i, s) for i, s in out if not pd.isna(year.iat[i]) and lo <= int(year.iat[i]) <= hi]
        if intent.genres:
            out = [(i, s) for i, s in out if set(intent.genres) <= self.categories(i)]
        if intent.avoid:
            out = [(i, s) for i, s in out if not set(intent.avoid) & self.categories(i)]
        return out[:intent.k]
