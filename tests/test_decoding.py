import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genrec.decoding import ItemTrie, build_trie, score_candidates, topk_items


@st.composite
def catalogues(draw):
    n = draw(st.integers(2, 40))
    seqs = draw(st.lists(st.lists(st.integers(3, 12), min_size=1, max_size=4), min_size=n, max_size=n,
                         unique_by=tuple))
    excluded = draw(st.sets(st.integers(0, n - 1), max_size=n - 1))
    return seqs, excluded


@settings(max_examples=200, deadline=None)
@given(catalogues(), st.integers(0, 10_000))
def test_trie_walk_under_random_logits_only_reaches_allowed_items(cat, seed):
    seqs, excluded = cat
    eos = 1
    trie = ItemTrie(seqs, eos)
    ex = trie.excluded_counts(excluded)
    rng = np.random.default_rng(seed)
    prefix: list[int] = []
    for _ in range(trie.depth):
        allowed = trie.allowed(prefix, ex)
        assert allowed, "a live prefix always has a continuation"
        logits = rng.normal(size=16)  # random scores over a 16-token vocabulary
        masked = np.full(16, -np.inf)
        masked[allowed] = logits[allowed]
        tok = int(np.argmax(masked))
        prefix.append(tok)
        if tok == eos:
            break
    item = trie.item_of(prefix)
    assert item is not None and item not in excluded and list(seqs[item]) + [eos] == prefix


def test_trie_rejects_duplicate_sequences():
    with pytest.raises(ValueError, match="same token sequence"):
        ItemTrie([[5, 6], [5, 6]], eos=1)


def make_model(backbone, mode, ds):
    from genrec.modeling.model import GenRecModel
    from tests.helpers import tiny_recipe
    torch.manual_seed(0)
    m = GenRecModel(tiny_recipe(backbone, mode), item_ids=ds.item_ids, titles=[ds.title(i) for i in range(ds.n_items)])
    return m.eval()


@pytest.fixture(scope="module")
def cyc(tmp_path_factory):
    from genrec.data.dataset import PreparedDataset
    from tests.helpers import cyclic_dataset
    return PreparedDataset.load(cyclic_dataset(tmp_path_factory.mktemp("c"), n_items=30))


def prompts(m, ds, users):
    from genrec.batches import Collator, make_example
    from genrec.prompts import load_templates
    t = next(t for t in load_templates()["sequential"] if t.answer == "item")
    rng = np.random.default_rng(0)
    exs = [make_example(ds, m, t, u, "test", rng, 4) for u in users]
    return exs, Collator(m).prompts(exs)


@pytest.mark.parametrize("backbone", ["tiny-llama", "tiny-t5"])
def test_beam_search_returns_valid_distinct_unseen_items_scored_by_likelihood(cyc, backbone):
    m = make_model(backbone, "text", cyc)
    users = [0, 1, 2]
    exs, batch = prompts(m, cyc, users)
    excl = [list(cyc.history(u, "test")) for u in users]
    top = topk_items(m, batch, 8, excl, num_beams=12)
    for u, row in zip(users, top):
        items = [i for i, _ in row]
        assert len(items) == 8 and len(set(items)) == 8
        assert all(0 <= i < cyc.n_items for i in items)
        assert not set(items) & set(excl[users.index(u)])
        assert [s for _, s in row] == sorted([s for _, s in row], reverse=True)
    # the beam's score of an item is exactly its log-likelihood under teacher forcing
    from genrec.batches import Collator
    one = Collator(m).prompts(exs[:1])
    items = [i for i, _ in top[0][:4]]
    np.testing.assert_allclose(score_candidates(m, one, items), [s for _, s in top[0][:4]], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backbone", ["tiny-llama", "tiny-t5"])
def test_atomic_ranking_is_exact_over_the_catalogue(cyc, backbone):
    m = make_model(backbone, "atomic", cyc)
    exs, batch = prompts(m, cyc, [0, 1])
    top = topk_items(m, batch, cyc.n_items, None)
    assert sorted(i for i, _ in top[0]) == list(range(cyc.n_items))  # a score for every item
    # the same scores as candidate scoring, and as the log-softmax of the item block
    cands = list(range(0, cyc.n_items, 3))
    from genrec.batches import Collator
    one = Collator(m).prompts(exs[:1])
    got = dict(top[0])
    np.testing.assert_allclose(score_candidates(m, one, cands), [got[c] for c in cands], rtol=1e-5, atol=1e-5)
    assert np.exp([s for _, s in top[0]]).sum() == pytest.approx(1.0, abs=1e-4)


def test_every_catalogue_item_is_in_the_trie(cyc):
    m = make_model("tiny-llama", "text", cyc)
    trie = build_trie(m)
    assert len(trie) == cyc.n_items
    for i in range(cyc.n_items):
        assert trie.item_of(m.codec.target_ids(i)) == i


def test_banned_next_tokens_against_hand_computed_cases():
    from genrec.serving.engine import banned_next_tokens
    assert banned_next_tokens([5, 6, 7, 5, 6], 3) == {7}  # "5 6" was followed by 7
    assert banned_next_tokens([5, 6, 7, 5, 6, 8, 5, 6], 3) == {7, 8}
    assert banned_next_tokens([5, 6, 7, 5, 6], 2) == {7}  # "6" was followed by 7
    assert banned_next_tokens([1, 1, 1], 2) == {1}
    assert banned_next_tokens([1, 2, 3], 3) == set()  # "2 3" never seen before
    assert banned_next_tokens([4], 3) == set() and banned_next_tokens([], 2) == set()
    assert banned_next_tokens([3, 4, 3], 1) == {3, 4}
    assert banned_next_tokens([3, 4, 3], 0) == set()


def test_banned_by_words_completes_only_a_matching_sequence():
    from genrec.decoding import banned_by_words
    seqs = [[7], [1, 2], [3, 4, 5]]
    assert banned_by_words([], seqs) == {7}  # a one-token word: always
    assert banned_by_words([9, 1], seqs) == {7, 2}
    assert banned_by_words([3, 4], seqs) == {7, 5} and banned_by_words([4], seqs) == {7}
    assert banned_by_words([3, 4, 1], seqs) == {7, 2}  # only the sequence that ends here counts


def _ngrams(seq, n):
    return [tuple(seq[i:i + n]) for i in range(len(seq) - n + 1)]


@pytest.mark.parametrize("backbone", ["tiny-llama", "tiny-t5"])
def test_greedy_text_never_repeats_a_trigram(cyc, backbone):
    from genrec.decoding import generate_text
    m = make_model(backbone, "atomic", cyc)
    exs, batch = prompts(m, cyc, [0, 1, 2, 3])
    seen: list[list[int]] = []  # the generated token ids, as generate_text decodes them
    decode = m.tokenizer.decode
    eos, start = m.tokenizer.eos_token_id, 1 if m.is_encoder_decoder else 0  # T5 rows begin with its start id

    def until_eos(ids):
        ids = list(ids)[start:]
        return ids[:ids.index(eos)] if eos in ids else ids

    m.tokenizer.decode = lambda ids, **kw: (seen.append(until_eos(ids)), decode(ids, **kw))[1]
    generate_text(m, batch, 40, no_repeat_ngram=0)
    # a random tiny model loops: the check below would catch a missing block
    assert any(len(set(_ngrams(s, 3))) < len(_ngrams(s, 3)) for s in seen)
    seen.clear()
    generate_text(m, batch, 40)  # default: no 3-gram twice
    assert len(seen) == 4 and all(len(s) >= 5 for s in seen)
    for s in seen:
        assert len(set(_ngrams(s, 3))) == len(_ngrams(s, 3)), s


@pytest.mark.parametrize("backbone", ["tiny-llama", "tiny-t5"])
def test_a_lead_begins_the_answer_and_rows_decode_as_they_would_alone(cyc, backbone):
    from genrec.decoding import generate_text
    m = make_model(backbone, "atomic", cyc)
    _, batch = prompts(m, cyc, [0, 1, 2, 3])
    leads = ["Film number 7 (1990)", "", "Film number 12", "Film number 3 (2001) is a"]
    out = generate_text(m, batch, 8, leads=leads)
    assert all(t.startswith(lead) for t, lead in zip(out, leads))
    assert all(len(t) > len(lead) for t, lead in zip(out, leads))  # and decoding went on after it
    for r in range(4):  # leads of different lengths in one batch: each row as if alone
        row = {"input_ids": batch["input_ids"][r:r + 1], "attention_mask": batch["attention_mask"][r:r + 1],
               "image_feats": None}
        assert generate_text(m, row, 8, leads=[leads[r]]) == [out[r]]
    assert generate_text(m, batch, 8, leads=[""] * 4) == generate_text(m, batch, 8)  # no lead: as before
    with pytest.raises(ValueError, match="one lead per prompt row"):
        generate_text(m, batch, 8, leads=["a", "b"])


@pytest.mark.parametrize("backbone", ["tiny-llama", "tiny-t5"])
def test_a_banned_word_is_never_generated_and_bans_are_per_row(cyc, backbone):
    from genrec.decoding import ban_ids, generate_text
    m = make_model(backbone, "atomic", cyc)
    _, batch = prompts(m, cyc, [0, 1, 2, 3])
    leads = ["Film number 7 (1990)", "", "Film number 12", ""]
    free = generate_text(m, batch, 12, leads=leads)
    first = m.tokenizer(free[0][len(leads[0]):], add_special_tokens=False)["input_ids"][0]
    word = m.tokenizer.decode([first]).strip()  # the first token row 0 writes after its lead
    assert [first] in ban_ids(m, [word])
    bans = [[word], [], [], []]
    out = generate_text(m, batch, 12, leads=leads, bans=bans)
    assert out[0] != free[0] and out[0].startswith(leads[0])
    gen = m.tokenizer(out[0][len(leads[0]):], add_special_tokens=False)["input_ids"]
    for s in ban_ids(m, [word]):
        assert not any(gen[i:i + len(s)] == s for i in range(len(gen))), (word, out[0])
    assert out[1:] == free[1:]  # rows without bans: unchanged
    row = {"input_ids": batch["input_ids"][:1], "attention_mask": batch["attention_mask"][:1], "image_feats": None}
    assert generate_text(m, row, 12, leads=leads[:1], bans=bans[:1]) == out[:1]
    assert generate_text(m, batch, 12, leads=leads, bans=[[]] * 4) == free
    with pytest.raises(ValueError, match="one ban list per prompt row"):
        generate_text(m, batch, 8, bans=[["a"]])


def test_row_bans_match_the_generated_tokens_only():
    """A banned two-token word whose first token ends the prompt (or lead) is not completed by the
    first generated token; once the output itself has the first token, the second is banned. Per row."""
    from genrec.decoding import RowBans
    rb = RowBans([[[1, 2]], []])
    first = rb(torch.tensor([[5, 1], [5, 1]]), torch.zeros(2, 4))
    assert torch.isfinite(first).all()
    then = rb(torch.tensor([[5, 1, 1], [5, 1, 1]]), torch.zeros(2, 4))
    assert then[0, 2] == float("-inf") and torch.isfinite(then[0, [0, 1, 3]]).all()
    assert torch.isfinite(then[1]).all()
