"""One chat turn answered: the routed intent (`chat.Router`) run through the model, in words.

- The history the model ranks with is the user's own plus the titles the person said they liked;
  an anonymous caller's history is those titles alone. With no history at all, the answer is the
  most popular items (said so), with an invitation to name a few titles.
- "why?" answers come from the model with the grounded prompt; on data with knowledge-graph facts
  each answer is judged by `genrec.claims.Checker`, and one that states anything untrue is replaced
  by the true metadata sentence. Where no film of the history links to the item, the answer says
  what is true instead: its genres, year and how often people with films of this history watched it.
- "why not X?" is answered from facts only: where X stands in this person's ranking, whether they
  have seen or ruled it out, what links it to their films or that nothing does.
"""
from __future__ import annotations

import numpy as np

from genrec.claims import Checker
from genrec.data.examples import metadata_explanation
from genrec.serving.chat import Intent

WHY_NOT_DEPTH = 100  # "why not X?": how far down this person's ranking X is looked for


def _filters(intent: Intent) -> tuple[str, str]:
    """("older comedy", " from 1980–1989, no horror"): the words before and after "picks"."""
    era = {"older": "older", "newer": "newer"}.get(intent.era or "", "")
    before = " ".join(x for x in [era, *intent.genres] if x)
    after = []
    if intent.years:
        lo, hi = intent.years
        after.append(f"from {lo}–{hi}" if hi < 9999 and lo > 0 else (f"before {hi + 1}" if lo == 0 else f"from {lo} on"))
    if intent.avoid:
        after.append("no " + ", ".join(intent.avoid))
    return (" " + before if before else ""), (" " + ", ".join(after) if after else "")


class Replier:
    def __init__(self, svc):
        self.svc, self.rec, self.router = svc, svc.rec, svc.router
        self.ds = self.rec.ds
        self.counts = self.router.titles.counts
        self.checker = Checker(self.ds) if any(self.ds.facts) else None

    # ------------------------------------------------------------------ helpers
    def history(self, intent: Intent) -> list[int]:
        own = self.rec.history(intent.user) if intent.user is not None else []
        seen = set(own)
        return own + [i for i in intent.likes if i not in seen]

    def _raw(self, items: list[int]) -> list[str]:
        return [self.ds.item_raw_ids[i] for i in items]

    def _given(self, intent: Intent, hist: list[int]) -> list[str] | None:
        """The history to send with a query: None lets the recommender use the user's own."""
        return None if intent.user is not None and not intent.likes else self._raw(hist)

    def who(self, intent: Intent) -> str:
        return f"user {intent.user}" if intent.user is not None else "you"

    def popular(self, exclude: set[int]) -> list[tuple[int, float | None]]:
        order = np.argsort(-self.counts, kind="stable")
        return [(int(i), None) for i in order if int(i) not in exclude]

    def similar_share(self, item: int, hist: list[int]) -> tuple[int, int]:
        """(how many of the users who watched a film of the history's last ten also watched `item`, how many)."""
        inter = self.ds.interactions
        recent = set(hist[-10:]) - {item}
        users = set(inter.loc[inter["item"].isin(recent), "user"].tolist())
        if not users:
            return 0, 0
        watched = set(inter.loc[inter["item"] == item, "user"].tolist())
        return len(users & watched), len(users)

    def true_sentence(self, item: int, hist: list[int]) -> str:
        text = metadata_explanation(self.ds, item, hist)[0]
        if self.checker is not None and not self.checker.link_possible(item, set(hist)):
            text += self._share(item, hist)
        return text

    # ------------------------------------------------------------------ tasks
    async def recommend(self, intent: Intent, meta: dict) -> str:
        hist = self.history(intent)
        ex = set(intent.exclude) | set(hist)
        if hist:
            whole = self.rec.model.codec.mode == "atomic"
            pool = self.router.pool_size(intent, self.ds.n_items - len(set(hist)), whole)
            ranked = await self.svc.raw(self.rec.query_recommend(intent.user, pool, history=self._given(intent, hist)))
        else:
            ranked = self.popular(ex)
        picked = self.router.refine(intent, ranked, hist)
        before, after = _filters(intent)
        if not picked:
            return f"I found nothing{before}{after} among the top candidates. Try asking without the filter."
        meta["items"] = [self.rec.item_info(i, s) for i, s in picked]
        n = len(picked)
        if hist:
            head = f"Here {'is' if n == 1 else 'are'} {n}{before} pick{'' if n == 1 else 's'} for {self.who(intent)}" \
                   f"{after and ',' + after}"
            if intent.likes:
                liked = ", ".join(self.ds.title(i) for i in intent.likes[-3:])
                head += f" (with what you liked: {liked})"
            head += ":"
        else:
            head = (f"Tell me a few titles you liked (“I loved {self.ds.title(picked[0][0])}”) and I'll tailor "
                    f"these. For now, the {n} most popular{before} titles here{after and ',' + after}:")
        if intent.unresolved:
            head = "I couldn't find " + ", ".join(f"“{u}”" for u in intent.unresolved) + " in this catalogue. " + head
        return head + "\n" + lines(meta["items"])

    async def choose(self, intent: Intent, meta: dict) -> str:
        hist = self.history(intent)
        if hist:
            q = self.rec.query_choose(intent.user, self._raw(intent.items), history=self._given(intent, hist))
            res = await self.svc.answer(q)
            how = f"For {self.who(intent)} the best of these is"
        else:
            res = [self.rec.item_info(i) for i, _ in sorted(((i, -self.counts[i]) for i in intent.items),
                                                             key=lambda t: t[1])]
            how = "I don't know your taste yet (tell me a title you liked), so by popularity the best is"
        meta["items"] = res
        best = res[0]
        return f"{how} {best['title']} [item {best['id']}]. Full ranking:\n" + lines(res)

    async def explain(self, intent: Intent, meta: dict) -> str:
        item = intent.items[0]
        iid, title = self.ds.item_raw_ids[item], self.ds.title(item)
        meta["items"] = [self.rec.item_info(item)]
        hist = self.history(intent)
        if not hist:
            return (f"About {title} [item {iid}]: {self.true_sentence(item, [])} Tell me a few titles you "
                    "liked and I can say how it links to them.")
        q = self.rec.query_explain(intent.user, iid, history=self._given(intent, hist))
        reason = (await self.svc.answer(q) or "").strip()
        meta["grounded"] = "model"
        if self.checker is not None:
            v = self.checker.check(reason, item, hist)
            if not v.faithful:
                reason, meta["grounded"] = self.true_sentence(item, hist), "facts"
            elif v.personal is None:
                reason = self.true_sentence(item, hist) if not reason else reason + self._share(item, hist)
        return f"Why {self.who(intent)} may like {title} [item {iid}]: {reason or self.true_sentence(item, hist)}"

    def _share(self, item: int, hist: list[int]) -> str:
        k, n = self.similar_share(item, hist)
        return f" {k:,} of the {n:,} people here who watched your recent films also watched it." if n else ""

    async def why_not(self, intent: Intent, meta: dict) -> str:
        item = intent.items[0]
        iid, title = self.ds.item_raw_ids[item], self.ds.title(item)
        meta["items"] = [self.rec.item_info(item)]
        hist = self.history(intent)
        if item in set(hist):
            return f"{title} [item {iid}] is already in {'your' if intent.user is None else 'this user’s'} " \
                   "history, and a recommendation only offers what is new."
        if item in set(intent.dislikes):
            return f"You said you didn't like {title} [item {iid}], so I leave it out."
        ruled_out = set(intent.avoid) & self.router.categories(item)
        if ruled_out:
            return f"{title} [item {iid}] is {' and '.join(sorted(ruled_out))}, which you asked me to leave out."
        whose = "your" if intent.user is None else f"user {intent.user}’s"
        if hist:
            depth = min(WHY_NOT_DEPTH, self.ds.n_items - len(set(hist)))
            ranked = await self.svc.raw(self.rec.query_recommend(intent.user, depth, history=self._given(intent, hist)))
            order = [i for i, _ in ranked]
            place = f"it is #{order.index(item) + 1} in {whose} ranking" if item in order else \
                f"it is not in {whose} top {depth}"
        else:
            rank = int((self.counts > self.counts[item]).sum()) + 1
            place = f"with no titles from you yet I go by popularity, and it is #{rank} of {self.ds.n_items:,} here"
        facts = [self.true_sentence(item, hist)]
        if hist and self.checker is not None and not self.checker.link_possible(item, set(hist)):
            facts.append("No film in the history shares its director, writer or cast.")
        return f"Why not {title} [item {iid}]: {place}. " + " ".join(facts)

    async def free(self, intent: Intent, meta: dict) -> str:
        text = intent.text if intent.user is None or intent.user in intent.text else f"user_{intent.user}: {intent.text}"
        res = await self.svc.answer(self.rec.query_ask(text, 5, "text"))
        return res["text"] or "I have no answer to that; try asking for a recommendation."

    def start(self, messages: list[dict], user_hint: str | None) -> tuple[Intent, dict]:
        """The routed intent and the reply's `genrec` metadata (task, user, items, liked, disliked)."""
        intent = self.router.route(messages, user_hint)
        meta = {"task": intent.kind, "user": intent.user, "items": [],
                "liked": [self.rec.item_info(i) for i in intent.likes],
                "disliked": [self.rec.item_info(i) for i in intent.dislikes]}
        return intent, meta

    async def run(self, intent: Intent, meta: dict) -> str:
        if intent.kind == "say":
            return intent.text
        return await {"sequential": self.recommend, "direct": self.choose, "explanation": self.explain,
                      "why_not": self.why_not, "free": self.free}[intent.kind](intent, meta)


def lines(items: list[dict]) -> str:
    out = []
    for n, x in enumerate(items, 1):
        year = f" ({x['year']})" if "year" in x and f"({x['year']})" not in x["title"] else ""
        score = f" — score {x['score']:.3f}" if "score" in x else ""
        out.append(f"{n}. {x['title']}{year} [item {x['id']}]{score}")
    return "\n".join(out)
