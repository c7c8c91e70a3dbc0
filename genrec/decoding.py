"""Item-constrained decoding, candidate scoring and free-text generation.

- `ItemTrie`: prefix tree over the token sequences of every valid item (its
  text ID + EOS). Beam search restricted by it (HF `prefix_allowed_tokens_fn`)
  can only ever emit real items; items to exclude (the user's history) are
  pruned by per-node counts, so a beam never enters a branch with no allowed item.
- `topk_items`: the model's top-k distinct items with scores — constrained
  beam search for text IDs (score = sequence log-likelihood), one forward pass
  over the atomic item block for atomic tokens (exact over the catalogue).
- `score_candidates`: exact log-likelihood of each candidate (direct task),
  reusing the prompt's KV cache for all candidates.
"""
from __future__ import annotations

import warnings

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from genrec.modeling.backbone import cache_kwarg
from genrec.modeling.model import GenRecModel


def on_device(batch: dict, device) -> dict:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


class ItemTrie:
    def __init__(self, sequences: list[list[int]], eos: int):
        self.eos = eos
        self.children: list[dict[int, int]] = [{}]
        self.below: list[int] = [0]  # items in each node's subtree
        self.leaf_item: dict[int, int] = {}
        self.paths: list[list[int]] = []
        self.depth = 0
        for item, seq in enumerate(sequences):
            seq = list(seq) + [eos]
            self.depth = max(self.depth, len(seq))
            node, path = 0, [0]
            for t in seq:
                nxt = self.children[node].get(t)
                if nxt is None:
                    nxt = len(self.children)
                    self.children.append({})
                    self.below.append(0)
                    self.children[node][t] = nxt
                node = nxt
                path.append(node)
            if node in self.leaf_item:
                raise ValueError(f"items {self.leaf_item[node]} and {item} have the same token sequence")
            self.leaf_item[node] = item
            for n in path:
                self.below[n] += 1
            self.paths.append(path)

    def __len__(self) -> int:
        return len(self.paths)

    def excluded_counts(self, items) -> dict[int, int]:
        """Per node, how many of `items` lie below it (for pruning)."""
        out: dict[int, int] = {}
        for i in items:
            for n in self.paths[int(i)]:
                out[n] = out.get(n, 0) + 1
        return out

    def node(self, prefix: list[int]) -> int | None:
        n = 0
        for t in prefix:
            n = self.children[n].get(int(t))
            if n is None:
                return None
        return n

    def allowed(self, prefix: list[int], excluded: dict[int, int] | None = None) -> list[int]:
        n = self.node(prefix)
        if n is None:
            return []
        ex = excluded or {}
        return [t for t, c in self.children[n].items() if self.below[c] - ex.get(c, 0) > 0]

    def item_of(self, seq: list[int]) -> int | None:
        n = self.node(list(seq) + ([] if seq and seq[-1] == self.eos else [self.eos]))
        return self.leaf_item.get(n) if n is not None else None


def build_trie(model: GenRecModel) -> ItemTrie:
    codec = model.codec
    return ItemTrie([codec.target_ids(i) for i in range(len(codec))], model.tokenizer.eos_token_id)


@torch.no_grad()
def atomic_logits(model: GenRecModel, batch: dict) -> torch.Tensor:
    """[B, I] float32 scores of every catalogue item at each prompt's answer position (one pass).
    An ensemble (genrec.modeling.ensemble) scores by its members' mean log-probability."""
    members = getattr(model, "members", None)
    if members:
        return torch.stack([torch.log_softmax(atomic_logits(m, batch), dim=-1) for m in members]).mean(0)
    batch = on_device(batch, model.device)
    h = model.answer_hidden(batch["input_ids"], batch["attention_mask"], batch["image_feats"])
    return model.item_logits(h).float()


def topk_from_logits(logits: torch.Tensor, k: int, exclude: list[list[int]] | None = None
                     ) -> list[list[tuple[int, float]]]:
    """Top-k (item, log-probability among the items that may be returned) per row of [B, I] logits."""
    logits = logits.clone()
    for r, ex in enumerate(exclude or []):
        if ex:
            logits[r, torch.as_tensor(list(ex), dtype=torch.long)] = float("-inf")
    logp = torch.log_softmax(logits, dim=-1)
    vals, idx = logp.topk(min(k, logits.shape[-1]), dim=-1)
    return [[(int(i), float(v)) for i, v in zip(ir, vr) if v > float("-inf")]
            for ir, vr in zip(idx.tolist(), vals.tolist())]


@torch.no_grad()
def topk_items(model: GenRecModel, batch: dict, k: int, exclude: list[list[int]] | None = None,
               trie: ItemTrie | None = None, num_beams: int | None = None) -> list[list[tuple[int, float]]]:
    """Top-k (item, score) per row of a prompt batch. `exclude`: per row, items never to return."""
    batch = on_device(batch, model.device)
    if model.codec.mode == "atomic":
        return topk_from_logits(atomic_logits(model, batch), k, exclude)
    trie = trie or build_trie(model)
    B = batch["input_ids"].shape[0]
    excl = [trie.excluded_counts(e) for e in (exclude or [[]] * B)]
    nb = num_beams or max(k, 2)
    embeds = model.embed(batch["input_ids"], batch["image_feats"])
    skip = 1 if model.is_encoder_decoder else 0  # T5 sequences start with the decoder start token

    def allowed(row: int, ids: torch.Tensor) -> list[int]:  # HF passes the batch row, not the beam
        toks = trie.allowed(ids.tolist()[skip:], excl[row])
        return toks or [trie.eos]

    out = model.backbone.generate(
        inputs_embeds=embeds, attention_mask=batch["attention_mask"], num_beams=nb, num_return_sequences=nb,
        max_new_tokens=trie.depth, prefix_allowed_tokens_fn=allowed, do_sample=False, length_penalty=0.0,
        early_stopping=True, output_scores=True, return_dict_in_generate=True,
        pad_token_id=model.tokenizer.pad_token_id, eos_token_id=trie.eos)
    seqs = out.sequences.tolist()
    scores = out.sequences_scores.tolist()
    results = []
    for r in range(B):
        seen, row = set(), []
        for j in range(r * nb, (r + 1) * nb):
            s = [t for t in seqs[j][skip:] if t != model.tokenizer.pad_token_id or t == trie.eos]
            if trie.eos in s:
                s = s[:s.index(trie.eos) + 1]
            item = trie.item_of(s)
            if item is not None and item not in seen and scores[j] > float("-inf"):
                seen.add(item)
                row.append((item, float(scores[j])))
        results.append(sorted(row, key=lambda x: -x[1])[:k])
    return results


@torch.no_grad()
def score_candidates(model: GenRecModel, batch: dict, candidates: list[int]) -> list[float]:
    """Log-likelihood of each candidate item as the answer to a one-prompt batch."""
    batch = on_device(batch, model.device)
    if batch["input_ids"].shape[0] != 1:
        raise ValueError("score_candidates takes a batch of one prompt")
    if not candidates:
        return []
    if model.codec.mode == "atomic":
        return candidate_scores_atomic(model, batch, [candidates])[0]
    eos, pad = model.tokenizer.eos_token_id, model.pad_id
    seqs = [model.codec.target_ids(c) + [eos] for c in candidates]
    N, L = len(seqs), max(len(s) for s in seqs)
    cand = torch.tensor([s + [pad] * (L - len(s)) for s in seqs], device=batch["input_ids"].device)  # [N, L]
    valid = torch.tensor([[1] * len(s) + [0] * (L - len(s)) for s in seqs], device=cand.device)  # [N, L]
    embeds = model.embed(batch["input_ids"], batch["image_feats"])  # [1, T, D]
    if model.is_encoder_decoder:
        base = model.base_model()
        enc = base.get_encoder()(inputs_embeds=embeds, attention_mask=batch["attention_mask"])
        hidden = enc.last_hidden_state.expand(N, -1, -1)  # [N, T, D]
        start = torch.full((N, 1), base.config.decoder_start_token_id, device=cand.device)
        dec_in = torch.cat([start, cand[:, :-1]], dim=1)  # [N, L]
        out = model.backbone(encoder_outputs=(hidden,), attention_mask=batch["attention_mask"].expand(N, -1),
                             decoder_input_ids=dec_in, decoder_attention_mask=valid)
        logp = torch.log_softmax(out.logits.float(), dim=-1)  # [N, L, V]
    else:
        out = model.backbone(inputs_embeds=embeds, attention_mask=batch["attention_mask"], use_cache=True)
        first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # [1, V]
        cache = out.past_key_values
        cache.batch_repeat_interleave(N)
        mask = torch.cat([batch["attention_mask"].expand(N, -1), valid[:, :-1]], dim=1)
        rest = model.backbone(inputs_embeds=model.embed(cand[:, :-1]), attention_mask=mask,
                              use_cache=True, **{cache_kwarg(model.base_model()): cache})
        logp = torch.cat([first.expand(N, -1).unsqueeze(1), torch.log_softmax(rest.logits.float(), -1)], dim=1)
    tok_lp = logp.gather(-1, cand.unsqueeze(-1)).squeeze(-1) * valid  # [N, L]
    return tok_lp.sum(-1).tolist()


@torch.no_grad()
def candidate_scores_atomic(model: GenRecModel, batch: dict, candidates: list[list[int]]) -> list[list[float]]:
    """Atomic tokens: every row's candidate log-probabilities from one batched forward pass."""
    logp = torch.log_softmax(atomic_logits(model, batch), dim=-1)  # [B, I]
    return [logp[r, torch.as_tensor(c, dtype=torch.long)].tolist() for r, c in enumerate(candidates)]


# Greedy decoding of a small model loops ("Animated film, 1996. Animated film, 1996. ...");
# no n-gram of this many tokens may appear twice in one answer (both engines apply it).
NO_REPEAT_NGRAM = 3


def append_leads(batch: dict, leads: list[list[int]], pad: int) -> dict:
    """A decoder-only prompt batch with each row's `leads` token ids appended after its prompt (the
    answer's first words, fixed; both engines decode on from there), left-padded again."""
    mask = batch["attention_mask"].bool()
    rows = [batch["input_ids"][r][mask[r]].tolist() + lead for r, lead in enumerate(leads)]
    width = max(len(x) for x in rows)
    ids = torch.tensor([[pad] * (width - len(x)) + x for x in rows], dtype=torch.long)
    att = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in rows], dtype=torch.long)
    return {**batch, "input_ids": ids, "attention_mask": att}


def ban_ids(model: GenRecModel, words: list[str]) -> list[list[int]]:
    """Token sequences of words an answer may not contain, as the model could write them: after a
    space or not, as given, lower-case or capitalised."""
    from genrec.modeling.items import text_ids
    seqs = {tuple(text_ids(model.tokenizer, v, space_prefix=sp))
            for w in words for v in {w, w.lower(), w[:1].upper() + w[1:]} for sp in (True, False)}
    return sorted(list(s) for s in seqs if s)


def banned_by_words(tokens: list[int], seqs: list[list[int]]) -> set[int]:
    """Tokens that would complete one of `seqs` right after `tokens` (a one-token sequence always)."""
    return {s[-1] for s in seqs
            if len(s) == 1 or (len(s) - 1 <= len(tokens) and tokens[len(tokens) - len(s) + 1:] == s[:-1])}


class RowBans(LogitsProcessor):
    """Per batch row, token sequences it may not generate (transformers' bad_words_ids is one list
    for the whole batch). `banned_by_words` is the rule the vLLM engine applies too."""

    def __init__(self, rows: list[list[list[int]]]):
        self.rows = rows
        self.start: int | None = None  # generated tokens begin here (after any prompt, decoder start, lead)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.start is None:
            self.start = input_ids.shape[1]
        for r, seqs in enumerate(self.rows):  # matched on the output only, as the vLLM engine does
            ban = banned_by_words(input_ids[r, self.start:].tolist(), seqs) if seqs else ()
            if ban:
                scores[r, list(ban)] = float("-inf")
        return scores


def lead_ids(model: GenRecModel, lead: str) -> list[int]:
    """Token ids of an answer's fixed first words, tokenised as training tokenised targets."""
    from genrec.modeling.items import text_ids
    return text_ids(model.tokenizer, lead, space_prefix=not model.is_encoder_decoder) if lead else []


@torch.no_grad()
def generate_text(model: GenRecModel, batch: dict, max_new_tokens: int = 48,
                  no_repeat_ngram: int = NO_REPEAT_NGRAM, leads: list[str] | None = None,
                  bans: list[list[str]] | None = None) -> list[str]:
    """Greedy free text (explanations, `ask`), never emitting the image placeholder and never
    repeating an n-gram of `no_repeat_ngram` generated tokens (0 = allow repeats).

    leads: per row, the answer's first words (`genrec.data.examples.explanation_lead`), fixed before
    decoding and part of the returned text; "" or None for none.
    bans: per row, words the answer may not contain (`genrec.data.examples.explanation_bans`)."""
    B = batch["input_ids"].shape[0]
    for name, x in (("lead", leads), ("ban list", bans)):
        if x is not None and len(x) != B:
            raise ValueError(f"one {name} per prompt row")
    seqs = [ban_ids(model, w) if w else [] for w in bans] if bans and any(bans) else None
    if not (leads and any(leads)):
        return _generate(model, batch, max_new_tokens, no_repeat_ngram, None, seqs)
    ids = [lead_ids(model, x) for x in leads]
    if not model.is_encoder_decoder:
        return _generate(model, append_leads(batch, ids, model.pad_id), max_new_tokens, no_repeat_ngram, ids, seqs)
    # T5: the lead starts the decoder; rows with leads of different lengths go one at a time
    return [t for r in range(B) for t in _generate(model, _row(model, batch, r), max_new_tokens, no_repeat_ngram,
                                                   ids[r:r + 1], seqs[r:r + 1] if seqs else None)]


def _row(model: GenRecModel, batch: dict, r: int) -> dict:
    """Row r of a prompt batch with its own image features (stored in prompt order, one per slot of
    `visual_tokens` <img> tokens)."""
    ids, feats = batch["input_ids"], batch.get("image_feats")
    if feats is not None:
        slots = (ids == model.image_token_id).sum(1).div(model.recipe.model.visual_tokens, rounding_mode="floor")
        start = int(slots[:r].sum())
        feats = feats[start:start + int(slots[r])] if int(slots[r]) else None
    return {"input_ids": ids[r:r + 1], "attention_mask": batch["attention_mask"][r:r + 1], "image_feats": feats}


def _generate(model: GenRecModel, batch: dict, max_new_tokens: int, no_repeat_ngram: int,
              leads: list[list[int]] | None, bans: list[list[list[int]]] | None = None) -> list[str]:
    batch = on_device(batch, model.device)
    kw = {"logits_processor": LogitsProcessorList([RowBans(bans)])} if bans else {}
    if leads and model.is_encoder_decoder:  # one row: the decoder starts from its lead
        start = model.backbone.config.decoder_start_token_id
        kw["decoder_input_ids"] = torch.tensor([[start] + leads[0]], device=model.device)
    embeds = model.embed(batch["input_ids"], batch["image_feats"])
    bad = [[model.image_token_id]]
    with warnings.catch_warnings():  # "applies only to newly generated tokens": what is wanted here
        warnings.filterwarnings("ignore", message=".*no_repeat_ngram_size.*")
        out = model.backbone.generate(inputs_embeds=embeds, attention_mask=batch["attention_mask"],
                                      max_new_tokens=max_new_tokens, do_sample=False, bad_words_ids=bad,
                                      no_repeat_ngram_size=no_repeat_ngram,
                                      pad_token_id=model.pad_id,
                                      eos_token_id=model.tokenizer.eos_token_id, **kw)
    if model.is_encoder_decoder:  # the decoder start (and a lead, kept) come back in the output
        return [model.tokenizer.decode(s[1:], skip_special_tokens=True).strip() for s in out.tolist()]
    leads = leads or [[]] * len(out)  # decoder-only returns the new tokens; a lead is part of the answer
    return [model.tokenizer.decode(lead + s, skip_special_tokens=True).strip() for lead, s in zip(leads, out.tolist())]
