"""What a person's words say about their taste: the titles they name (an ID, an exact or a misspelt
title), whether they liked them, the genres they ask for or rule out (in the forms people use:
"comedies", "sci-fi", "rom-com"), how many picks they want ("3", "ten"), and which years.

Everything here is deterministic text matching against the dataset's own titles and categories;
`genrec.serving.chat` turns the result into a request for the model.
"""
from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np

from genrec.data.dataset import PreparedDataset

NUMBER_WORDS = {w: n for n, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve "
                                           "thirteen fourteen fifteen sixteen seventeen eighteen nineteen "
                                           "twenty".split())}
_WORDS = {n: w for w, n in NUMBER_WORDS.items()}
_N = r"(\d{1,2}|" + "|".join(NUMBER_WORDS) + r"|a couple(?: of)?|a few)"
_NOUNS = r"(?:movies|films|items|picks|titles|recommendations|suggestions|options|ideas|ones|more|shows|products)"
COUNT = [re.compile(p, re.I) for p in (
    rf"\b(?:recommend|suggest|give|show|list|name|find|get|want|need|top|pick)\s+(?:me\s+|us\s+)?(?:another\s+|"
    rf"the\s+(?:best\s+|top\s+)?)?{_N}\b(?!\s*(?:years?|decades?|%|s\b))",
    rf"\b{_N}\s+(?:[\w'-]+\s+){{0,2}}?(?:{_NOUNS}|[a-z'-]+s)\b",
    rf"\b{_N}\s+(?:please|pls)\b",
    rf"^\s*{_N}\s*[?.!]*\s*$",
)]
# Phrases that introduce titles or genres the person likes / dislikes; the object runs to the end of
# the clause. Dislikes are tried first ("I didn't like X" contains "like X").
DISLIKE = re.compile(r"\b(?:i|we)\s+(?:really\s+|just\s+)?(?:didn'?t|did not|don'?t|do not|never)\s+(?:really\s+)?"
                     r"(?:like|love|enjoy|care for|want|get)\s+|\b(?:i|we)\s+(?:really\s+)?(?:hated|hate|disliked|"
                     r"dislike|can'?t stand|couldn'?t stand)\s+|\b(?:not|no|without|except|but not|anything but|"
                     r"other than|skip|avoid|nothing like|less)\s+(?!sure\b|really\b|too\b|much\b|more\b|one\b)", re.I)
LIKE = re.compile(r"\b(?:i|we)(?:'ve|\s+have)?\s+(?:really\s+|just\s+|also\s+)?(?:loved|love|liked|like|enjoyed|"
                  r"enjoy|adored|adore|watched|saw|seen)\s+|\b(?:something|anything|movies?|films?|more|ones?|stuff)\s+"
                  r"(?:\w+\s+)?like\s+|\bsimilar to\s+|\bfan of\s+|\bfavou?rites?\s+(?:is|are|was|were|include)\s+|"
                  r"\bin the mood for\s+|\bbased on\s+|\bbecause i liked\s+", re.I)
CLAUSE_END = re.compile(r"[.?!;]|\s[-–—]\s|,?\s+(?:what|which|can|could|would|should|any|so|but|please|recommend|"
                        r"suggest|give|show|and then|because|any\w*)\b", re.I)
SPLIT = re.compile(r",|\s+&\s+|\s+and\s+|\s+or\s+|\s+nor\s+|/", re.I)
FILLER = re.compile(r"^(?:the (?:movie|film)s?|movies?|films?|watching|seeing|(?:a|an|any|some)\s+(?=\w+s\b)|"
                    r"(?:a|an)\s+(?=[a-z-]+\s*$)|a lot of|lots of|much|very much|so much)\s+", re.I)
MAX_PIECES, MAX_RUN, MAX_CUES = 16, 6, 8  # bounds on the work one message can ask for
# common ways of naming a genre -> the dataset categories it means (kept only if the dataset has them)
SYNONYMS = {"science fiction": ["sci-fi"], "scifi": ["sci-fi"], "sci fi": ["sci-fi"],
            "kids": ["children's"], "children": ["children's"], "family": ["children's"],
            "childrens": ["children's"], "cartoon": ["animation"], "animated": ["animation"], "anime": ["animation"],
            "scary": ["horror"], "funny": ["comedy"], "comedic": ["comedy"], "romantic": ["romance"],
            "rom-com": ["romance", "comedy"], "romcom": ["romance", "comedy"], "rom com": ["romance", "comedy"],
            "romantic comedy": ["romance", "comedy"], "docs": ["documentary"],
            "noir": ["film-noir"], "film noir": ["film-noir"], "whodunit": ["mystery"], "suspense": ["thriller"],
            "war movie": ["war"], "war film": ["war"], "cowboy": ["western"]}


def normalise(title: str) -> str:
    """'Usual Suspects, The (1995)' -> 'the usual suspects' (accents, case, year and articles folded)."""
    t = unicodedata.normalize("NFKD", str(title)).encode("ascii", "ignore").decode()
    t = re.sub(r"\(\s*\d{4}\s*\)", " ", t)
    m = re.match(r"^(.*),\s*(the|a|an|la|le|les|il|el|der|die|das)\s*$", t.strip(), re.I)
    if m:
        t = f"{m.group(2)} {m.group(1)}"
    t = re.sub(r"[^a-z0-9]+", " ", t.lower())
    return " ".join(t.split())


def plural(word: str) -> str:
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + ("es" if word.endswith(("s", "x", "ch", "sh")) else "s")


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

    def resolve(self, text: str, fuzzy: bool = True) -> int | None:
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
        spelt = " ".join(_WORDS[int(w)] if w.isdigit() and 0 < int(w) <= 20 else w for w in n.split())
        if spelt in self.by_norm:  # "12 Monkeys" -> Twelve Monkeys
            return self._most_popular(self.by_norm[spelt])
        if not fuzzy:
            return None
        hits = difflib.get_close_matches(n, self.names, n=1, cutoff=0.8)
        if hits:
            return self._most_popular(self.by_norm[hits[0]])
        starts = [name for name in self.names if name.startswith(n + " ") or name.endswith(" " + n)]
        if len(n) >= 4 and starts:
            return self._most_popular([i for s in starts for i in self.by_norm[s]])
        return None

    def resolve_prefix(self, text: str) -> tuple[int | None, str]:
        """The item a phrase starts with and the words matched ("Heat a lot" -> Heat): the whole phrase
        (fuzzy), else its longest leading words that name a title exactly."""
        i = self.resolve(text)
        if i is not None:
            return i, text
        words = text.split()
        for n in range(len(words) - 1, 0, -1):
            head = " ".join(words[:n])
            i = self.resolve(head, fuzzy=False)
            if i is not None and len(normalise(head)) >= 3:
                return i, head
        return None, ""

    def _most_popular(self, items: list[int]) -> int:
        if len(items) == 1:
            return items[0]
        return max(items, key=lambda i: (int(self.counts[i]), -i))  # the better-known film of a shared title


class Genres:
    """The dataset's categories and the words people use for them."""

    def __init__(self, ds: PreparedDataset):
        cats: set[str] = set()
        if "category" in ds.items:
            for c in ds.items["category"].dropna():
                cats.update(x.strip().lower() for x in re.split(r"[|,;]", str(c)) if x.strip())
        cats.discard("unknown")
        self.categories = sorted(cats)
        forms: dict[str, list[str]] = {}
        for c in cats:
            for f in {c, plural(c), c.replace("-", " "), c.replace("-", ""), c.replace("'", ""),
                      plural(c.replace("'", ""))}:
                forms[f] = [c]
        for word, means in SYNONYMS.items():
            if all(m in cats for m in means):
                for f in (word, plural(word)):
                    forms.setdefault(f, means)
        self.forms = forms
        alts = sorted(forms, key=len, reverse=True)
        self.pattern = re.compile(r"(?<![\w'-])(" + "|".join(map(re.escape, alts)) + r")(?![\w'-])", re.I) \
            if alts else None

    def find(self, text: str) -> list[tuple[int, int, list[str]]]:
        """(start, end, categories) for every genre named in the text."""
        if self.pattern is None:
            return []
        return [(m.start(), m.end(), self.forms[m.group(1).lower()]) for m in self.pattern.finditer(text)]

    def of(self, text: str) -> list[str] | None:
        """The categories a short phrase names ("comedies" -> ["comedy"]), or None."""
        t = FILLER.sub("", text.strip().lower()).strip(" .!?")
        t = re.sub(r"\s+(?:movies?|films?|stuff|ones?)$", "", t)
        return self.forms.get(t)


def count(text: str) -> int | None:
    """How many picks the text asks for ("recommend 3", "ten more", "top 5"), or None."""
    for p in COUNT:
        m = p.search(text)
        if m:
            w = m.group(1).lower()
            return 2 if w.startswith("a couple") else 3 if w == "a few" else \
                (NUMBER_WORDS[w] if w in NUMBER_WORDS else int(w))
    return None


def years(text: str) -> tuple[int, int] | None:
    """A year range the text asks for: "from the 80s", "1990s", "before 1980", "after 1995"."""
    m = re.search(r"\b(?:the\s+)?(19|20)?(\d)0'?s\b", text, re.I)
    if m:
        century = m.group(1) or ("20" if m.group(2) in "012" else "19")
        lo = int(century + m.group(2) + "0")
        return lo, lo + 9
    m = re.search(r"\b(before|until|pre|after|since|from)\s*-?\s*((?:19|20)\d\d)\b", text, re.I)
    if m:
        y = int(m.group(2))
        return (0, y - 1) if m.group(1).lower() in ("before", "until", "pre") else \
            (y + (1 if m.group(1).lower() == "after" else 0), 9999)
    return None


@dataclass
class Said:
    """What one message says about taste."""
    likes: list[int] = field(default_factory=list)
    dislikes: list[int] = field(default_factory=list)
    genres: list[str] = field(default_factory=list)  # asked for (all must hold)
    avoid: list[str] = field(default_factory=list)  # ruled out
    unresolved: list[str] = field(default_factory=list)
    rest: str = ""  # the text with the matched titles taken out (for counts, genres, years)


def split_titles(text: str, titles: TitleIndex, genres: Genres | None = None) -> list[tuple[str, int | None, str]]:
    """(phrase, item or None, the words that named it) for each title in a list ("Heat, Casino and
    Fargo"); a title holding a separator ("Sense and Sensibility") is kept whole when it names one;
    a piece that names a genre ("horror") is left unresolved."""
    bits = SPLIT.split(text)[:MAX_PIECES]  # a list longer than anyone types is cut (and costs no more)
    seps = SPLIT.findall(text)
    out, j = [], 0
    while j < len(bits):
        for end in range(min(len(bits), j + MAX_RUN), j + 1, -1):  # the longest run of pieces that is one title
            whole = "".join(b + (seps[n] if n < end - 1 else "") for n, b in enumerate(bits[j:end], j))
            i = titles.resolve(_clean(whole), fuzzy=False)
            if i is not None:
                out.append((_clean(whole), i, _clean(whole)))
                j = end
                break
        else:
            part = _clean(bits[j])
            if part and genres is not None and genres.of(part) is not None:
                out.append((part, None, ""))
            elif part:
                i, matched = titles.resolve_prefix(part)
                out.append((part, i, matched))
            j += 1
    return out


def _clean(part: str) -> str:
    return FILLER.sub("", part.strip(" \"'“”")).strip(" .:\"'“”")


def read_taste(text: str, titles: TitleIndex, genres: Genres) -> Said:
    """Titles and genres after "I loved / something like / not / I didn't like ...", judged by the
    phrase before them; genres named anywhere else are asked for."""
    said, rest = Said(), text
    spans = []
    cues = re.finditer(DISLIKE.pattern + "|" + LIKE.pattern, text, re.I)
    for m in (m for n, m in enumerate(cues) if n < MAX_CUES):
        negative = DISLIKE.fullmatch(m.group(0)) is not None
        tail = text[m.end():]
        end = CLAUSE_END.search(tail)
        obj = tail[:end.start()] if end else tail
        for part, i, matched in split_titles(obj, titles, genres):
            g = genres.of(part) if i is None else None
            if g is not None:
                (said.avoid if negative else said.genres).extend(x for x in g if x not in said.avoid + said.genres)
                spans.append(part)
                continue
            if i is not None:
                target = said.dislikes if negative else said.likes
                if i not in said.likes + said.dislikes:
                    target.append(i)
                spans.append(matched)
            elif not negative and LIKE.fullmatch(m.group(0)) and len(part.split()) <= 6 and \
                    not re.search(r"\b(it|that|this|them|one|ones|these|those|something|anything|you|me)\b", part, re.I):
                said.unresolved.append(part)
    for s in spans:
        rest = rest.replace(s, " ")
    for _, _, cats in genres.find(rest):
        said.genres.extend(c for c in cats if c not in said.genres and c not in said.avoid)
    said.rest = rest
    return said
