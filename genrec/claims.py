"""A checker of what a MovieLens explanation claims, judged against the dataset.

Explanations there follow the references' sentence (genrec.data.examples.metadata_explanation):
"<Title> (<year>) is a <genres> film, from the director of <T>, sharing cast with <T>, the
sequel to <T> and winner of 3 awards." Each part is a claim:

- title: the sentence names the explained item (by its title);
- year / genres: the item's year; every genre named is one of the item's;
- link (director, writer, cast, sequel, prequel): <T> is a catalogue title and shares that
  relation with the item in the knowledge-graph facts; a title not in the catalogue is false;
- awards: the facts' count of awards won / nominations ("winner of 3 awards"); "award-winning" is
  true when the item won any; any other award statement ("winner of the 1995 Oscar") is false, since
  the data cannot bear it out.

Titles are matched without case or trailing dots: "When Harry Met Sally" names the catalogue's
"When Harry Met Sally...".

`check` judges one sentence: `faithful` when every claim found is true (a sentence with no
recognisable claim is not faithful), `personal` when a true link names a film in the user's history
(None when the user's history has no such film: nothing personal could be said truthfully).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd

from genrec.data.dataset import PreparedDataset

LINKS = {"from the director of": "directed_by", "written by the writer of": "written_by",
         "sharing cast with": "actor", "the sequel to": "prequel", "the prequel to": "sequel"}
_HEAD = re.compile(r"^\s*(?P<title>.+?)\s*(?:\((?P<year>\d{4})\))?\s+is an?\s+(?P<kinds>.+?)\s+film(?=[,.\s]|$)"
                   r"(?P<rest>.*)$", re.S)
_PHRASE = re.compile(r"\b(" + "|".join(LINKS) + r")\s+")
_BOUNDARY = re.compile(r",\s|\s+and\s+|\.\s*$|\.\s+(?=[A-Z0-9])|$")  # a clause or a sentence ends
_AWARD = re.compile(r"\b(winner of|nominated for)\s+(\d+)\s+awards?\b")
_AWARD_ANY = re.compile(r"\b(?:winner of|nominated for|won|award-winning|oscars?|academy awards?)\b", re.I)


def title_key(title: str) -> str:
    """A title as the checker compares it: no case, no surrounding space or trailing dots."""
    return title.strip().rstrip(".").strip().lower()


@dataclass
class Verdict:
    claims: list[tuple[str, str, bool]] = field(default_factory=list)  # (kind, what, true?)
    personal: bool | None = None

    @property
    def faithful(self) -> bool:
        return bool(self.claims) and all(ok for _, _, ok in self.claims)


class Checker:
    def __init__(self, ds: PreparedDataset):
        self.ds = ds
        self.by_title: dict[str, list[int]] = {}
        for i in range(ds.n_items):
            self.by_title.setdefault(title_key(ds.title(i)), []).append(i)
        self.exact = {ds.title(i).strip().lower() for i in range(ds.n_items)}

    def _genres(self, item: int) -> set[str]:
        return {g.lower() for g in str(self.ds.items["category"].iat[item] or "").split("|") if g}

    def _linked(self, item: int, other: int, rel: str) -> bool:
        mine, theirs = self.ds.facts[item] or {}, self.ds.facts[other] or {}
        if rel in ("prequel", "sequel"):  # "the sequel to T": item follows T (the facts store both ways)
            raw_other, raw_item = self.ds.item_raw_ids[other], self.ds.item_raw_ids[item]
            back = "sequel" if rel == "prequel" else "prequel"
            return raw_other in map(str, mine.get(rel, [])) or raw_item in map(str, theirs.get(back, []))
        return bool(set(mine.get(rel, [])) & set(theirs.get(rel, [])))

    def check(self, text: str, item: int, history: list[int]) -> Verdict:
        v = Verdict()
        m = _HEAD.match(text or "")
        hist = set(int(h) for h in history)
        if m is None:
            return v
        v.claims.append(("title", m["title"], title_key(m["title"]) == title_key(self.ds.title(item))))
        if m["year"]:
            y = self.ds.items["year"].iat[item]
            v.claims.append(("year", m["year"], not pd.isna(y) and int(y) == int(m["year"])))
        named = [g.strip().lower() for g in re.split(r",\s*|\s+and\s+", m["kinds"]) if g.strip()]
        have = self._genres(item)
        for g in named:
            v.claims.append(("genre", g, g in have))
        rest = m["rest"]
        links_true_in_history = False
        links = self._links(rest)
        for phrase, t in links:
            cands = self.by_title.get(title_key(t), [])
            ok = any(self._linked(item, c, LINKS[phrase]) for c in cands)
            v.claims.append(("link", f"{phrase} {t}", ok))
            if ok and any(c in hist and self._linked(item, c, LINKS[phrase]) for c in cands):
                links_true_in_history = True
        f = self.ds.facts[item] or {}
        for phrase, t in links:  # a linked title's words are not award statements ("Oscar and Lucinda")
            rest = rest.replace(f"{phrase} {t}", phrase, 1)
        counted = set()
        for a in _AWARD.finditer(rest):
            kind, n = a.group(1), int(a.group(2))
            want = f.get("awards_won") if kind == "winner of" else f.get("award_nominations")
            v.claims.append(("awards", a.group(0), want == n))
            counted.add(a.start())
        for a in _AWARD_ANY.finditer(rest):  # every other award statement
            if a.start() in counted:
                continue
            word = a.group(0).lower()
            v.claims.append(("awards", rest[a.start():a.start() + 40].split(",")[0].strip(),
                             word == "award-winning" and bool(f.get("awards_won"))))
        v.personal = True if links_true_in_history else (False if self.link_possible(item, hist) else None)
        return v

    def _links(self, rest: str) -> list[tuple[str, str]]:
        """(phrase, title) for each link clause; the title is the longest catalogue title that ends at a
        clause boundary (titles may hold commas: "Sex, Lies, and Videotape"), else the text up to the
        first boundary (a title the catalogue does not have)."""
        out = []
        for m in _PHRASE.finditer(rest):
            tail = rest[m.end():]
            ends = [b.start() for b in _BOUNDARY.finditer(tail)]
            exact = [e for e in ends if tail[:e].strip().lower() in self.exact]  # as the catalogue writes it
            known = exact or [e for e in ends if title_key(tail[:e]) in self.by_title]  # its dots dropped
            e = max(known) if known else (ends[0] if ends else len(tail))
            out.append((m.group(1), tail[:e].strip()))
        return out

    def link_possible(self, item: int, history: set[int]) -> bool:
        """Whether some film of the history truly shares a director, writer, cast or a sequel link with it."""
        if not self.ds.facts[item]:
            return False
        return any(self._linked(item, h, rel) for h in history if h != item and self.ds.facts[h]
                   for rel in set(LINKS.values()))


def score(ds: PreparedDataset, items: list[int], histories: list[list[int]], texts: list[str]) -> dict:
    """{"faithful": share of sentences whose every claim is true, "personal": share with a true link to
    the user's history among users where one exists, "users_with_link": how many such users}."""
    c = Checker(ds)
    verdicts = [c.check(t, i, h) for t, i, h in zip(texts, items, histories)]
    pers = [v.personal for v in verdicts if v.personal is not None]
    return {"faithful": sum(v.faithful for v in verdicts) / len(verdicts) if verdicts else 0.0,
            "personal": sum(pers) / len(pers) if pers else 0.0, "users_with_link": len(pers)}
