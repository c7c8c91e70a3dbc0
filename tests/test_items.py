"""Atomic item tokens: the backbone's vocabulary is untouched, and the item block is exact."""
import numpy as np
import pytest
import torch

from genrec.modeling.backbone import build_from_config
from genrec.modeling.model import GenRecModel
from tests.helpers import tiny_recipe

IDS = [str(100 + i) for i in range(12)]


def random_item_table_model(seed: int, recipe=None, std: float = 0.3) -> GenRecModel:
    """A tiny atomic-item model in eval mode whose item table (input, output, bias) is random, not zero."""
    torch.manual_seed(seed)
    m = GenRecModel(recipe or tiny_recipe(item_tokens="atomic"), build_from_config("tiny-llama"), item_ids=IDS,
                    titles=[f"film {i}" for i in range(12)]).eval()
    with torch.no_grad():
        for p in m.item_emb.parameters():
            p.normal_(0, std)
    return m


def test_adding_item_tokens_leaves_original_embeddings_and_logits_unchanged():
    plain = GenRecModel(tiny_recipe(item_tokens="text"), build_from_config("tiny-llama"), item_ids=IDS)
    atomic = GenRecModel(tiny_recipe(item_tokens="atomic"), build_from_config("tiny-llama"), item_ids=IDS,
                         titles=[f"film {i}" for i in range(12)])
    atomic.visual_proj.load_state_dict(plain.visual_proj.state_dict())
    e_plain = plain.base_model().get_input_embeddings().weight
    e_atomic = atomic.base_model().get_input_embeddings().weight
    assert torch.equal(e_plain, e_atomic)  # no row added to or changed in the backbone's table
    ids = plain.tokenizer(["user_1 watched 100, 101. Next?"], return_tensors="pt")
    with torch.no_grad():
        a = plain(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"]).logits
        b = atomic(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"]).logits
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert atomic.codec.offset >= e_atomic.shape[0]


def test_untrained_item_block_ranks_like_popularity():
    counts = np.arange(12)[::-1] * 10.0
    m = GenRecModel(tiny_recipe(item_tokens="atomic"), build_from_config("tiny-llama"), item_ids=IDS,
                    titles=[f"film {i}" for i in range(12)], item_counts=counts)
    h = torch.randn(3, m.item_emb.weight.shape[1])
    order = m.item_logits(h).argsort(dim=-1, descending=True)
    assert (order == torch.arange(12)).all()


def test_item_block_scores_are_the_generation_log_probabilities_up_to_a_constant():
    m = random_item_table_model(seed=0)
    with torch.no_grad():
        text = m.codec.text(3) + " and " + m.codec.text(5) + " then"
        ids = m.tokenizer([text], return_tensors="pt")
        mask = ids["attention_mask"]
        h = m.answer_hidden(ids["input_ids"], mask)  # [1, D]
        block = torch.log_softmax(m.item_logits(h), -1)[0]  # the ranking genrec uses
        # the other way: the next-token distribution over the whole extended vocabulary
        base_logits = m(input_ids=ids["input_ids"], attention_mask=mask).logits[0, -1]  # [V]
        full = torch.log_softmax(torch.cat([base_logits, m.item_logits(h)[0]]), -1)
        gen = full[base_logits.shape[0]:]  # log P(generate item i)
    diff = gen - block
    torch.testing.assert_close(diff, diff[0].expand_as(diff), rtol=0, atol=1e-5)  # a constant: log P(any item)
    assert torch.equal(gen.argsort(), block.argsort())


def test_dense_item_loss_adds_every_history_item_as_a_target():
    m = random_item_table_model(seed=1)
    with torch.no_grad():
        text = "user_1: " + m.codec.text(3) + ", " + m.codec.text(5) + ". next?"
        enc = m.tokenizer([text], return_tensors="pt")
        ids, mask = enc["input_ids"], enc["attention_mask"]
        dense = m(input_ids=ids, attention_mask=mask, item_targets=torch.tensor([7]), dense_items=True).loss
        # by hand: hidden states of the whole prompt; positions followed by items 3 and 5, and the end
        hid = m.base_model().get_decoder()(inputs_embeds=m.embed(ids), attention_mask=mask).last_hidden_state[0]
        pos = [int(j) for j in range(ids.shape[1] - 1) if ids[0, j + 1] >= m.codec.offset]
        assert len(pos) == 2
        logp = torch.log_softmax(m.item_logits(hid), -1)
        expect = -(logp[pos[0], 3] + logp[pos[1], 5] + logp[-1, 7]) / 3
    torch.testing.assert_close(dense, expect, rtol=1e-5, atol=1e-5)


def _loss(m, h, y):
    return m._item_loss(h, y).loss


def test_sampled_softmax_is_a_bounded_exact_subset_of_the_full_softmax():
    import dataclasses
    rec = tiny_recipe(item_tokens="atomic")
    sampled = dataclasses.replace(rec, items=dataclasses.replace(rec.items, negatives=4))
    m = random_item_table_model(seed=2, recipe=sampled, std=0.5)
    h = torch.randn(6, m.item_emb.weight.shape[1])
    y = torch.tensor([1, 1, 4, 7, 9, 11])
    m.eval()
    full = _loss(m, h, y)
    m.train()
    with torch.no_grad():
        for seed in range(20):
            torch.manual_seed(seed)
            s = _loss(m, h, y)
            # a sampled partition function is a subset of the full one that keeps the target: never above it
            assert torch.isfinite(s) and s <= full + 1e-6
            # by hand: columns = distinct targets + the same 4 draws, repeated targets masked
            torch.manual_seed(seed)
            neg = torch.randint(0, 12, (4,))
            cand = torch.cat([y.unique(), neg])
            logits = h @ m.item_emb.out[cand].T + m.item_emb.bias[cand]
            rows = []
            for r in range(len(y)):
                cols = [c for c in range(len(cand)) if cand[c] != y[r]]
                own = int((cand == y[r]).nonzero()[0])
                rows.append(-(logits[r, own] - torch.logsumexp(logits[r, cols + [own]], 0)))
            torch.testing.assert_close(s, torch.stack(rows).mean(), rtol=1e-5, atol=1e-5)
    # as many negatives as items: the full softmax, exactly
    m.recipe = dataclasses.replace(rec, items=dataclasses.replace(rec.items, negatives=12))
    torch.testing.assert_close(_loss(m, h, y), full)


def test_item_init_title_plus_image_mixes_in_the_projected_clip_feature():
    from dataclasses import replace
    base = tiny_recipe(item_tokens="atomic")
    titles = ["film"] * 12  # identical titles: only the images tell the items apart
    torch.manual_seed(0)
    plain = GenRecModel(base, build_from_config("tiny-llama"), item_ids=IDS, titles=titles)
    feats = torch.randn(12, plain.visual_proj.fc1.in_features)
    feats[3] = feats[2]  # two items with the same picture
    has = torch.tensor([i % 4 != 0 for i in range(12)])  # items 0, 4, 8 have no image
    torch.manual_seed(0)
    rec = replace(base, items=replace(base.items, init="title+image"))
    mixed = GenRecModel(rec, build_from_config("tiny-llama"), item_ids=IDS, titles=titles, item_images=(feats, has))
    t, m = plain.item_emb.weight.detach(), mixed.item_emb.weight.detach()
    assert torch.equal(m[~has], t[~has])  # no image: the title row, unchanged
    with torch.no_grad():
        p = mixed.visual_proj(feats[1]).mean(0)  # item 1's k visual tokens, averaged
    expect = 0.5 * (t[1] + p * t[1].norm() / p.norm())
    torch.testing.assert_close(m[1], expect, rtol=1e-5, atol=1e-6)
    assert torch.equal(m[2], m[3]) and not torch.allclose(m[1], m[2])  # same picture, same row
    with pytest.raises(ValueError, match="title\\+image"):  # bad value named
        from genrec.config import ItemsConfig, from_dict
        from_dict(ItemsConfig, {"init": "image"}, "items")


def test_item_init_title_plus_cf_mixes_in_the_collaborative_vector():
    from dataclasses import replace

    from genrec.modeling.items import cf_rows
    base = tiny_recipe(item_tokens="atomic")
    titles = ["film"] * 12  # identical titles: only the interactions tell the items apart
    cf = np.zeros((12, 3), dtype=np.float32)
    cf[1], cf[2], cf[5] = [1, 0, 0], [1, 0, 0], [0, 2, 0]  # 1 and 2 co-consumed, 5 elsewhere; others unseen
    torch.manual_seed(0)
    plain = GenRecModel(base, build_from_config("tiny-llama"), item_ids=IDS, titles=titles)
    torch.manual_seed(0)
    rec = replace(base, items=replace(base.items, init="title+cf"))
    mixed = GenRecModel(rec, build_from_config("tiny-llama"), item_ids=IDS, titles=titles, item_cf=cf)
    t, m = plain.item_emb.weight.detach(), mixed.item_emb.weight.detach()
    unseen = torch.tensor([i not in (1, 2, 5) for i in range(12)])
    assert torch.equal(m[unseen], t[unseen])  # no collaborative vector: the title row, unchanged
    p = cf_rows(torch.as_tensor(cf), t.shape[1])[5]
    torch.testing.assert_close(m[5], 0.5 * (t[5] + p * t[5].norm() / p.norm()), rtol=1e-5, atol=1e-6)
    assert torch.equal(m[1], m[2]) and not torch.allclose(m[1], m[5])
    torch.testing.assert_close(cf_rows(torch.as_tensor(cf), 8), cf_rows(torch.as_tensor(cf), 8))  # fixed map
    # the recipe without item_init=title+cf ignores the vectors; a model loading a checkpoint gets none
    torch.manual_seed(0)
    ignored = GenRecModel(base, build_from_config("tiny-llama"), item_ids=IDS, titles=titles, item_cf=cf)
    assert torch.equal(ignored.item_emb.weight, t)


def test_shared_prompt_opening_is_run_once_and_changes_no_answer():
    m = random_item_table_model(seed=1)
    texts = ["Given the history of user_7: " + "".join(m.codec.text(i) for i in (3, 5, 1)) + ". Next?",
             "Given the history of user_12: " + m.codec.text(2) + ". Next?",
             "Given the history of user_7: " + "".join(m.codec.text(i) for i in range(9)) + " then?"]
    m.tokenizer.padding_side = "left"
    enc = m.tokenizer(texts, return_tensors="pt", padding=True)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    common = 0
    rows = [ids[r, mask[r].bool()].tolist() for r in range(3)]
    while all(len(r) > common and r[common] == rows[0][common] for r in rows):
        common += 1
    assert common >= 6  # "Given the history of user_" is shared, the user number is not
    assert m.shared_prefix(ids, mask) == common
    with torch.no_grad():
        batched = m.answer_hidden(ids, mask)  # prefix path: batch > 1, no grad
        alone = torch.cat([m.answer_hidden(ids[r:r + 1, -len(rows[r]):], mask[r:r + 1, -len(rows[r]):])
                           for r in range(3)])
    torch.testing.assert_close(batched, alone, rtol=1e-4, atol=1e-5)
    # an image placeholder ends the shared part: its visual tokens differ per row
    img = ids.clone()
    img[:, -len(rows[1]) + 2] = m.image_token_id  # third real token of the shortest row
    img[0, -len(rows[0]) + 2] = m.image_token_id
    img[2, -len(rows[2]) + 2] = m.image_token_id
    assert m.shared_prefix(img, mask) == 2



def test_item_dropout_touches_only_item_rows_and_only_in_training():
    from dataclasses import replace

    from genrec.config import ConfigError, ItemsConfig
    base = tiny_recipe(item_tokens="atomic")
    m = random_item_table_model(seed=5, recipe=replace(base, items=replace(base.items, dropout=0.5)))
    off = m.codec.offset
    ids = torch.tensor([[1, 2, off + 3, 4, off + 7, off + 1, 5] * 8])  # 24 item positions, 32 text
    is_item = ids >= off
    m.eval()
    clean = m.embed(ids)
    assert torch.equal(m.embed(ids), clean)  # eval: deterministic, no dropout
    m.train()
    torch.manual_seed(0)
    noisy = m.embed(ids)
    assert torch.equal(noisy[~is_item], clean[~is_item])  # text tokens never dropped
    it_clean, it_noisy = clean[is_item], noisy[is_item]
    zeroed = (it_noisy == 0) & (it_clean != 0)
    assert 0.35 < zeroed.float().mean().item() < 0.65  # about half of the item elements dropped
    kept = ~zeroed
    torch.testing.assert_close(it_noisy[kept], it_clean[kept] * 2)  # the rest scaled by 1 / (1 - p)
    with pytest.raises(ConfigError, match="items.dropout"):
        ItemsConfig(dropout=1.0)


def test_sequential_prompts_end_at_the_last_history_item_where_dense_training_reads(tmp_path):
    """seq_readout=last_item: a sequential item prompt stops at its last history item, so its
    answer is read where dense_items trains next-item prediction — and, the backbone being causal,
    equals the full prompt's hidden state at that item. Other prompts and `answer` keep the question."""
    from dataclasses import replace

    from genrec.batches import Collator, make_example
    from genrec.data.dataset import PreparedDataset
    from genrec.decoding import atomic_logits
    from genrec.prompts import load_templates
    from tests.helpers import cyclic_dataset
    ds = PreparedDataset.load(cyclic_dataset(tmp_path, n_items=24))
    base = tiny_recipe(item_tokens="atomic")
    assert base.items.readout == "last_item"  # the default
    torch.manual_seed(0)
    m = GenRecModel(base, build_from_config("tiny-llama"), item_ids=ds.item_ids,
                    titles=[ds.title(i) for i in range(ds.n_items)]).eval()
    with torch.no_grad():
        for p in m.item_emb.parameters():
            p.normal_(0, 0.3)
    ts = load_templates()
    seq = next(t for t in ts["sequential"] if t.id == "seq-1")
    direct = next(t for t in ts["direct"] if t.answer == "item")
    ex = [make_example(ds, m, seq, u, "test", np.random.default_rng(0), 6) for u in (0, 1, 2)]
    d = make_example(ds, m, direct, 0, "test", np.random.default_rng(0), 6, n_candidates=5)
    cut, d_cut = Collator(m).prompts(ex), Collator(m).prompt_ids(d)[0]
    m.recipe = replace(base, items=replace(base.items, readout="answer"))
    full, d_full = Collator(m).prompts(ex), Collator(m).prompt_ids(d)[0]
    m.recipe = base
    assert d_cut == d_full  # a direct prompt (candidates, not a history) keeps its question
    off = m.codec.offset
    for r in range(3):
        c = cut["input_ids"][r][cut["attention_mask"][r].bool()].tolist()
        f = full["input_ids"][r][full["attention_mask"][r].bool()].tolist()
        assert c[-1] >= off and f[-1] < off  # ends at an item / at the question's last token
        assert f[:len(c)] == c and len(f) - len(c) > 3  # the same opening, the question dropped
        assert m.tokenizer.decode(f[len(c):]).strip().startswith(".")
    # scores at the cut prompt's end == the full prompt's hidden state at its last item
    with torch.no_grad():
        got = atomic_logits(m, cut)
        hid = m.base_model().get_decoder()(inputs_embeds=m.embed(full["input_ids"]),
                                           attention_mask=full["attention_mask"]).last_hidden_state
        is_item = full["input_ids"] >= off
        last = [int(torch.nonzero(is_item[r]).max()) for r in range(3)]
        want = m.item_logits(hid[torch.arange(3), last]).float()
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_mask_seen_leaves_each_targets_history_out_of_its_softmax():
    """Dense item loss with seen_before: the hand-written seen set of every target (items before the
    prompt + the prompt's items before it; never the target itself, even when repeated)."""
    m = random_item_table_model(seed=4, std=0.5)
    off = m.codec.offset
    text = m.tokenizer("watched", add_special_tokens=False)["input_ids"][:1] * 2  # two text tokens
    ids = torch.tensor([text + [off + 3, off + 5, off + 7], text + [off + 4, off + 6, off + 4]])  # [2, 5]
    mask = torch.ones_like(ids)
    before = torch.zeros(2, 12, dtype=torch.bool)
    before[0, 1] = before[1, 0] = True
    answers = torch.tensor([9, 6])
    # (row, position, target, seen): the dense targets row by row, then the two answers
    cases = [(0, 1, 3, {1}), (0, 2, 5, {1, 3}), (0, 3, 7, {1, 3, 5}),
             (1, 1, 4, {0}), (1, 2, 6, {0, 4}), (1, 3, 4, {0, 6}),  # 4 again: itself stays
             (0, 4, 9, {1, 3, 5, 7}), (1, 4, 6, {0, 4})]  # 6 was seen: still the target
    with torch.no_grad():
        hidden = m.base_model().get_decoder()(inputs_embeds=m.embed(ids), attention_mask=mask).last_hidden_state
        logits = m.item_logits(hidden).float()  # [2, 5, 12]
        nll, plain = [], []
        for b, t, y, seen in cases:
            row = logits[b, t].clone()
            plain.append(-torch.log_softmax(row, -1)[y])
            row[list(seen)] = float("-inf")
            nll.append(-torch.log_softmax(row, -1)[y])
        got = m(input_ids=ids, attention_mask=mask, item_targets=answers, dense_items=True, seen_before=before).loss
        torch.testing.assert_close(got, torch.stack(nll).mean(), rtol=1e-5, atol=1e-6)
        unmasked = m(input_ids=ids, attention_mask=mask, item_targets=answers, dense_items=True).loss
        torch.testing.assert_close(unmasked, torch.stack(plain).mean(), rtol=1e-5, atol=1e-6)
        assert got < unmasked  # fewer competitors in every masked row
        # answer-only loss: the answers' rows alone
        only = m(input_ids=ids, attention_mask=mask, item_targets=answers, seen_before=before).loss
        torch.testing.assert_close(only, torch.stack(nll[-2:]).mean(), rtol=1e-5, atol=1e-6)
