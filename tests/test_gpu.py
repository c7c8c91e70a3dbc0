"""bitsandbytes 4/8-bit backbones (QLoRA-style training) — needs a CUDA GPU and the quant extra.

Run on a GPU machine: `pip install 'genrec[quant]' && python -m pytest -q -m gpu`. On the CPU
the same configuration fails with a clear message (tests/test_modeling.py checks that)."""
import importlib.util

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (bitsandbytes k-bit layers)"),
    pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None,
                       reason="needs bitsandbytes: pip install 'genrec[quant]'"),
]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from genrec.modeling.backbone import build_from_config
    d = tmp_path_factory.mktemp("tiny-llama")
    bb = build_from_config("tiny-llama")
    bb.model.save_pretrained(d)
    bb.tokenizer.save_pretrained(d)
    return d, bb


@pytest.mark.parametrize("bits", ["4bit", "8bit"])
def test_quantized_backbone_keeps_the_model_and_trains_lora_only(tiny_dir, bits):
    import bitsandbytes as bnb

    from genrec.modeling.backbone import load_backbone
    from genrec.modeling.model import GenRecModel
    from tests.helpers import tiny_recipe

    d, ref = tiny_dir
    bb = load_backbone(str(d), dtype="bfloat16", quantize=bits)
    layer = bnb.nn.Linear4bit if bits == "4bit" else bnb.nn.Linear8bitLt
    assert any(isinstance(m, layer) for m in bb.model.modules())
    ids = ref.tokenizer(["user_1 watched 5, 7 and 9. What next?"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        want = ref.model(ids).logits.float()[0, -1]
        got = bb.model(ids.cuda()).logits.float()[0, -1].cpu()
    assert torch.nn.functional.cosine_similarity(want, got, dim=0) > 0.9  # quantisation error, not a new model

    m = GenRecModel(tiny_recipe(item_tokens="text"), bb, item_ids=[str(i) for i in range(20)])
    m.visual_proj.cuda()
    frozen = {n: p.detach().clone() for n, p in m.backbone.named_parameters() if not p.requires_grad}
    lora = {n: p.detach().clone() for n, p in m.named_parameters() if p.requires_grad and "lora_" in n}
    assert lora
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    batch = ref.tokenizer(["user_1 watched 5, 7 and 9. What next? 11"], return_tensors="pt")
    ids = batch["input_ids"].cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = m(input_ids=ids, attention_mask=batch["attention_mask"].cuda(), labels=ids).loss
    loss.backward()
    opt.step()
    after = dict(m.named_parameters())
    assert any(not torch.equal(after[n].detach(), v) for n, v in lora.items())
    for n, p in m.backbone.named_parameters():
        if n in frozen:
            assert torch.equal(p.detach(), frozen[n]), n
