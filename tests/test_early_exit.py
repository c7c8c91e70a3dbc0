"""model.rank_layers (early exit): items are scored from the first k decoder layers, text runs them all."""
from dataclasses import replace

import pytest
import torch

from genrec.config import ConfigError, ModelConfig
from genrec.modeling.backbone import build_from_config
from genrec.modeling.model import GenRecModel
from genrec.serving.engine import ITEM_BIAS_FILE, RANK_DIR, export_for_vllm
from tests.helpers import tiny_recipe

IDS = [str(100 + i) for i in range(12)]


def early_exit_model(k: int = 1, seed: int = 0) -> GenRecModel:
    r = tiny_recipe(item_tokens="atomic")
    r = replace(r, model=replace(r.model, rank_layers=k))
    torch.manual_seed(seed)
    m = GenRecModel(r, build_from_config("tiny-llama"), item_ids=IDS, titles=[f"film {i}" for i in range(12)])
    with torch.no_grad():  # LoRA's B starts at zero: make the adapters and item rows act, so a wrong depth shows
        for n, p in m.backbone.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.2)
        for p in m.item_emb.parameters():
            p.normal_(0, 0.3)
    return m


def prompts(m: GenRecModel):
    tok = m.tokenizer
    tok.padding_side = "left"
    ids = tok(["user_1 watched <item_100> <item_101> next?", "user_2 watched <item_103> then?"],
              return_tensors="pt", padding=True)
    return ids["input_ids"], ids["attention_mask"]


def test_items_are_scored_after_layer_k_and_text_after_every_layer():
    m = early_exit_model(k=1).eval()
    base = m.base_model()
    assert len(base.get_decoder().layers) == 2  # the model keeps both layers
    ids, mask = prompts(m)
    assert (ids >= m.codec.offset).any()  # the prompts hold atomic item tokens
    with torch.no_grad():
        emb = m.embed(ids, None)
        states = base.model(inputs_embeds=emb, attention_mask=mask, output_hidden_states=True).hidden_states
        want = base.model.norm(states[1])[:, -1]  # after the first layer, through the final norm
        got = m.answer_hidden(ids, mask)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(got, states[2][:, -1], atol=1e-3)  # not the full stack's state
        # text: every layer, and the stack is whole again after a ranking pass
        assert len(base.get_decoder().layers) == 2
        text = m(input_ids=ids, attention_mask=mask).logits
        torch.testing.assert_close(text, base.lm_head(states[2]), rtol=1e-5, atol=1e-5)


def test_an_item_loss_step_trains_only_the_first_k_layers():
    m = early_exit_model(k=1).train()
    ids, mask = prompts(m)
    loss = m(input_ids=ids, attention_mask=mask, item_targets=torch.tensor([2, 5]), dense_items=True).loss
    loss.backward()
    grads = {n: p.grad for n, p in m.backbone.named_parameters() if "lora_B" in n}
    first = [g for n, g in grads.items() if ".layers.0." in n]
    second = [g for n, g in grads.items() if ".layers.1." in n]
    assert first and second
    assert all(g is not None and g.abs().sum() > 0 for g in first)
    assert all(g is None for g in second)  # the second layer never ran
    assert all(p.grad is not None for p in m.item_emb.parameters())  # the item table trains as usual


def test_checkpoint_keeps_the_exit_and_errors_are_one_line(tmp_path):
    m = early_exit_model(k=1).eval()
    ids, mask = prompts(m)
    m.save_pretrained(tmp_path / "ck")
    back = GenRecModel.from_pretrained(tmp_path / "ck", backbone=build_from_config("tiny-llama")).eval()
    assert back.recipe.model.rank_layers == 1
    with torch.no_grad():
        torch.testing.assert_close(back.answer_hidden(ids, mask), m.answer_hidden(ids, mask), rtol=0, atol=0)
    with pytest.raises(ValueError, match="model.rank_layers=2: the backbone has 2 layers"):
        early_exit_model(k=2)
    t5 = tiny_recipe(backbone="tiny-t5", item_tokens="atomic")
    with pytest.raises(ValueError, match="decoder backbones only"):
        GenRecModel(replace(t5, model=replace(t5.model, rank_layers=1)), build_from_config("tiny-t5"), item_ids=IDS)
    with pytest.raises(ConfigError, match="rank_layers must be >= 0"):
        ModelConfig(rank_layers=-1)
    with pytest.raises(ConfigError, match="below model.layers"):
        ModelConfig(layers=4, rank_layers=4)
    with pytest.raises(ConfigError, match="atomic"):
        r = tiny_recipe(item_tokens="text")
        replace(r, model=replace(r.model, rank_layers=1))


def test_the_vllm_export_ranks_with_the_cut_model_and_writes_text_with_every_layer(tmp_path):
    """What vLLM loads, read back with transformers: `rank/` (the model cut after layer k) gives
    the checkpoint's item scores, the full export its text logits."""
    from types import SimpleNamespace

    from transformers import AutoModelForCausalLM

    m = early_exit_model(k=1).eval()
    out = export_for_vllm(SimpleNamespace(model=m), tmp_path / "export")  # merges the adapter into m
    assert (out / ITEM_BIAS_FILE).is_file() and (out / RANK_DIR / ITEM_BIAS_FILE).is_file()
    full = AutoModelForCausalLM.from_pretrained(out).eval()
    cut = AutoModelForCausalLM.from_pretrained(out / RANK_DIR).eval()
    assert (len(full.model.layers), len(cut.model.layers)) == (2, 1)
    ids, mask = prompts(m)
    off, n = m.codec.offset, len(m.codec)
    bias = m.item_emb.bias.detach()
    with torch.no_grad():
        emb = m.embed(ids, None)
        for row in range(ids.shape[0]):  # one unpadded prompt at a time, as vLLM receives them
            keep = mask[row].bool()
            e, one, ones = emb[row][keep][None], ids[row][keep][None], torch.ones(1, int(keep.sum()), dtype=torch.long)
            items = cut(inputs_embeds=e).logits[0, -1, off:off + n] + bias
            want = m.item_logits(m.answer_hidden(one, ones))[0]
            torch.testing.assert_close(items, want, rtol=1e-4, atol=1e-4)
            whole = full(inputs_embeds=e).logits[0, -1]
            wrong = whole[off:off + n] + bias  # every layer: not the scores
            assert not torch.allclose(wrong, want, atol=1e-2)
            text = whole[:off]
            torch.testing.assert_close(text, m(input_ids=one, attention_mask=ones).logits[0, -1, :off],
                                       rtol=1e-4, atol=1e-4)
