"""`GenRecModel`: frozen backbone + visual projector + adapters, with save/load.

The forward pass embeds the prompt tokens, `splice`s the projected CLIP
features over the `<img>` placeholders and calls the backbone with
`inputs_embeds` (the T5 encoder's, or the decoder's). Nothing of the
backbone's code is copied.

A checkpoint directory holds only what trained, plus what rebuilds the rest::

    config.yaml             the recipe (model + adapter + data + train sections)
    trainable.safetensors   visual projector, bottleneck adapters, unfrozen norms
    lora/                   peft adapter folder (adapter_config.json + weights), for LoRA
    item_ids.json           the dataset's item ID map, when saved with one
    tokenizer/              the tokenizer with genrec's added tokens

No pickle anywhere.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn
from transformers.utils import ModelOutput

from genrec.checkpoint import CheckpointError, read_config
from genrec.files import atomic_dir
from genrec.config import SECTIONS, TASK_FAMILIES, Recipe, from_dict, to_dict
from genrec.modeling.adapters import add_bottlenecks, add_lora, is_trainable_name, set_trainable
from genrec.modeling.backbone import (Backbone, cache_kwarg, decoder_stack, first_layers, keep_layers, load_backbone,
                                     set_attention_dropout)
from genrec.modeling.items import (ItemCodec, ItemTable, add_atomic_tokens, cf_rows, item_cross_entropy, items_so_far,
                                   mix_init, title_init)
from genrec.modeling.projector import VisualProjector, splice
from genrec.prompts import IMAGE_TOKEN
from genrec.vision import clip_dim

CHECKPOINT_VERSION = 1
MIN_SHARED_PREFIX = 4  # shorter shared openings are not worth a second forward call


class GenRecModel(nn.Module):
    def __init__(self, recipe: Recipe, backbone: Backbone | None = None, item_ids: list[str] | None = None,
                 titles: list[str] | None = None, item_counts=None, item_images: tuple | None = None,
                 item_cf=None):
        super().__init__()
        self.recipe = recipe
        bb = backbone or load_backbone(recipe.model.backbone, recipe.model.dtype, recipe.model.quantize)
        self.kind, self.tokenizer, self.tiny = bb.kind, bb.tokenizer, bb.tiny
        tok = self.tokenizer
        if IMAGE_TOKEN not in tok.get_vocab():
            tok.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
        self.image_token_id = tok.convert_tokens_to_ids(IMAGE_TOKEN)
        model = bb.model
        old_rows = model.get_input_embeddings().num_embeddings
        if len(tok) > old_rows:
            # the <img> input row is never read (splice overwrites it); new rows are set to the
            # mean embedding so that building a model is deterministic. Frozen like the rest.
            model.resize_token_embeddings(len(tok), mean_resizing=False)
            with torch.no_grad():
                for emb in {id(e): e for e in (model.get_input_embeddings(), model.get_output_embeddings())
                            if e is not None}.values():
                    emb.weight[old_rows:] = emb.weight[:old_rows].mean(0)
            for p in model.parameters():
                p.requires_grad_(False)
        ref = model.get_input_embeddings().weight
        proj_dtype = ref.dtype if ref.dtype in (torch.float32, torch.bfloat16, torch.float16) else torch.float32
        self.visual_proj = VisualProjector(clip_dim(recipe.model.clip_model), bb.hidden,
                                           recipe.model.visual_tokens).to(ref.device, proj_dtype)
        if recipe.model.layers:
            keep_layers(model, recipe.model.layers)
        if recipe.model.rank_layers:  # checked once, at build
            decoder_stack(model, recipe.model.rank_layers, "model.rank_layers", early_exit=True)
        if recipe.model.attention_dropout is not None:
            set_attention_dropout(model, recipe.model.attention_dropout)
        a = recipe.adapter
        self.task_state = None
        if a.type == "bottleneck":
            self.task_state = add_bottlenecks(model, bb.kind, bb.hidden, a, TASK_FAMILIES)
        elif a.type == "lora":
            model = add_lora(model, bb.lora_targets, a)
        self.backbone = model
        self.item_emb: ItemTable | None = None
        self.codec: ItemCodec | None = None
        if item_ids is not None:
            self.attach_items(item_ids, titles, item_counts, item_images, item_cf)
        elif recipe.items.tokens == "atomic":
            raise ValueError("items.tokens=atomic needs the dataset's item IDs")
        set_trainable(self, a.train_layer_norms)

    def attach_items(self, item_ids: list[str], titles: list[str] | None = None, item_counts=None,
                     item_images: tuple | None = None, item_cf=None) -> None:
        """Bind the catalogue: the item codec and, for atomic tokens, the trainable item table.

        item_images: (features [I, C], has_image [I] bool) — used when items.init is
        title+image (a checkpoint's rows are loaded afterwards, so only training reads it);
        item_cf: collaborative vectors [I, d] (genrec.data.indexing.cooccurrence_vectors), used when
        items.init is title+cf."""
        offset = None
        if self.recipe.items.tokens == "atomic":
            base_emb = self.base_model().get_input_embeddings()
            fill = base_emb.num_embeddings - len(self.tokenizer)
            if fill > 0:  # T5's matrix has spare rows beyond its tokenizer: item ids must start after them
                self.tokenizer.add_tokens([f"<genrec_unused_{j}>" for j in range(fill)], special_tokens=True)
            offset = add_atomic_tokens(self.tokenizer, item_ids)
            if offset < base_emb.num_embeddings:
                raise ValueError("atomic item ids overlap the backbone vocabulary")
            init = title_init(base_emb, self.tokenizer, list(titles) if titles else [""] * len(item_ids))
            if self.recipe.items.init == "title+image" and item_images is not None:
                feats, has = item_images
                with torch.no_grad():
                    vis = self.visual_proj(feats.to(self.device, self.visual_proj.fc1.weight.dtype))  # [I, K, D]
                init = mix_init(init, vis.mean(1).cpu(), torch.as_tensor(has, dtype=torch.bool))
            if self.recipe.items.init == "title+cf" and item_cf is not None:
                cf = torch.as_tensor(item_cf, dtype=torch.float32)  # [I, d]
                init = mix_init(init, cf_rows(cf, init.shape[1]), cf.abs().sum(1) > 0)
            self.item_emb = ItemTable(len(item_ids), base_emb.embedding_dim).to(base_emb.weight.device)
            with torch.no_grad():
                self.item_emb.init(init)
                if item_counts is not None:
                    prior = torch.log1p(torch.as_tensor(item_counts, dtype=torch.float32))
                    self.item_emb.bias.copy_(prior - prior.mean())
        self.codec = ItemCodec(self.recipe.items.tokens, item_ids, self.tokenizer, offset,
                               space_prefix=not self.is_encoder_decoder)

    # ---------------------------------------------------------------- helpers
    @property
    def device(self) -> torch.device:
        return self.visual_proj.fc1.weight.device

    @property
    def is_encoder_decoder(self) -> bool:
        return self.kind == "t5"

    @property
    def pad_id(self) -> int:
        """The token that pads prompts and answers: the tokenizer's pad token, else its end of text."""
        tok = self.tokenizer
        return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def base_model(self) -> nn.Module:
        """The transformers model (under peft's wrapper when LoRA is on)."""
        m = self.backbone
        return m.get_base_model() if hasattr(m, "get_base_model") else m

    def set_task(self, family: str) -> None:
        """Route bottleneck adapters to a task family's set (no-op when shared or LoRA)."""
        if self.task_state is not None:
            self.task_state.task = family

    def trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad]

    def parameter_counts(self) -> tuple[int, int]:
        total = sum(p.numel() for p in self.parameters())
        train = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return train, total

    # ---------------------------------------------------------------- forward
    def embed(self, input_ids: torch.Tensor, image_feats: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings with visual tokens spliced in. image_feats: [N, C] per image slot."""
        table = self.base_model().get_input_embeddings()
        if self.item_emb is not None:
            off = self.codec.offset
            is_item = input_ids >= off  # [B, T]
            emb = table(input_ids.masked_fill(is_item, 0))  # [B, T, D]
            items = self.item_emb((input_ids - off).clamp(min=0)).to(emb.dtype)  # [B, T, D]
            p = self.recipe.items.dropout
            if p and self.training:
                items = nn.functional.dropout(items, p)
            emb = torch.where(is_item.unsqueeze(-1), items, emb)
        else:
            emb = table(input_ids)  # [B, T, D]
        visual = self.visual_proj(image_feats.to(self.visual_proj.fc1.weight.dtype)) \
            if image_feats is not None and image_feats.numel() else None  # [N, K, D]
        return splice(emb, input_ids, self.image_token_id, visual)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                image_feats: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                decoder_input_ids: torch.Tensor | None = None, item_targets: torch.Tensor | None = None,
                target_len: int | None = None, dense_items: bool = False,
                seen_before: torch.Tensor | None = None, **kw):
        """The backbone's output on spliced embeddings; with a training loss when asked.

        item_targets [B]: full-softmax cross-entropy over the atomic item block at the answer
        position; with dense_items (decoder-only) also at every position followed by an item token.
        seen_before [B, I] bool (with item_targets): items the user had before the prompt's first
        item; each target's softmax then leaves out those and the prompt's items before it
        (items.mask_seen), never the target itself.
        target_len (decoder-only, left-padded, with labels): token cross-entropy with logits computed
        only at the last target_len + 1 positions (the rest are never needed).
        Keeping the loss inside forward lets a DDP-wrapped model synchronise gradients.
        """
        if item_targets is not None and dense_items and not self.is_encoder_decoder:
            # every atomic item in the prompt is also a target, predicted from the position before
            # it (causal, as SASRec trains), plus the answer after the last position
            embeds = self.embed(input_ids, image_feats)
            with self.ranking_layers():
                hidden = self.base_model().get_decoder()(inputs_embeds=embeds,
                                                         attention_mask=attention_mask).last_hidden_state  # [B, T, D]
            nxt = input_ids[:, 1:]  # [B, T-1]
            is_item = nxt >= self.codec.offset
            h = torch.cat([hidden[:, :-1][is_item], hidden[:, -1]])  # [M + B, D]
            y = torch.cat([nxt[is_item] - self.codec.offset, item_targets])  # [M + B]
            seen = None
            if seen_before is not None:
                upto = self.items_so_far(input_ids) | seen_before.unsqueeze(1)  # [B, T, I]
                seen = torch.cat([upto[:, :-1][is_item], upto[:, -1]])  # [M + B, I]
            return self._item_loss(h, y, seen)
        if item_targets is not None:
            h = self.answer_hidden(input_ids, attention_mask, image_feats)  # [B, D]
            seen = None if seen_before is None else self.items_so_far(input_ids)[:, -1] | seen_before  # [B, I]
            return self._item_loss(h, item_targets, seen)
        embeds = self.embed(input_ids, image_feats)
        if self.is_encoder_decoder:
            return self.backbone(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels,
                                 decoder_input_ids=decoder_input_ids, **kw)
        if target_len is not None and labels is not None:
            keep = target_len + 1
            out = self.backbone(inputs_embeds=embeds, attention_mask=attention_mask, logits_to_keep=keep, **kw)
            logits = out.logits[:, :-1].float()  # [B, L, V] predicting the last L tokens
            tgt = labels[:, -(keep - 1):]  # [B, L]
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                                               ignore_index=-100)
            return ModelOutput(loss=loss, logits=out.logits)
        return self.backbone(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels, **kw)

    def answer_hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      image_feats: torch.Tensor | None = None) -> torch.Tensor:
        """[B, D] final hidden state where the answer's first token is predicted.

        Decoder-only prompts must be left-padded (the answer follows the last position);
        T5 reads the decoder's first position.
        """
        embeds = self.embed(input_ids, image_feats)
        base = self.base_model()
        if self.is_encoder_decoder:
            start = torch.full((input_ids.shape[0], 1), base.config.decoder_start_token_id,
                               dtype=torch.long, device=input_ids.device)
            out = self.backbone(inputs_embeds=embeds, attention_mask=attention_mask, decoder_input_ids=start,
                                output_hidden_states=True)
            h = out.decoder_hidden_states[-1][:, 0]  # [B, D]
            if getattr(base.config, "tie_word_embeddings", False):
                h = h * base.config.d_model ** -0.5  # T5 rescales before a tied output layer
            return h
        with self.ranking_layers():
            # ranking only: in training, running the opening once measured no gain on a CPU
            if not torch.is_grad_enabled() and input_ids.shape[0] > 1:
                p = self.shared_prefix(input_ids, attention_mask)
                if p >= MIN_SHARED_PREFIX:
                    return self._hidden_after_prefix(embeds, attention_mask, p)
            out = base.get_decoder()(inputs_embeds=embeds, attention_mask=attention_mask)
            return out.last_hidden_state[:, -1]  # [B, D]

    def ranking_layers(self):
        """Context in which the decoder stops at `model.rank_layers` (early exit; all layers when 0)."""
        return first_layers(self.base_model(), self.recipe.model.rank_layers)

    def shared_prefix(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> int:
        """Length of the text every row starts with (left-padded rows; stops before any <img>, whose
        visual tokens differ per row). Prompts rendered from one template share its opening words."""
        lens = attention_mask.sum(1)  # [B]
        n = int(lens.min())
        if n < 2:
            return 0
        T = input_ids.shape[1]
        cols = (T - lens).unsqueeze(1) + torch.arange(n, device=input_ids.device)  # [B, n]
        real = input_ids.gather(1, cols)  # [B, n] each row's first n real tokens
        same = (real == real[:1]).all(0) & (real[0] != self.image_token_id)  # [n]
        p = int(same.long().cumprod(0).sum())
        return min(p, n - 1)  # at least one token of each row is run per row

    def _hidden_after_prefix(self, embeds: torch.Tensor, attention_mask: torch.Tensor, p: int) -> torch.Tensor:
        """The answer position's hidden state, running the shared first p tokens once for the batch:
        their keys/values are computed on one row and repeated, the rest of each row attends to them.
        Positions are each row's true ones (0.. from its first real token), so the result equals
        running every row on its own."""
        from transformers import DynamicCache
        B, T, _ = embeds.shape
        lens = attention_mask.sum(1)  # [B]
        dec = self.base_model().get_decoder()
        key = cache_kwarg(dec)
        row0 = T - int(lens[0])
        cache = DynamicCache()
        dec(inputs_embeds=embeds[:1, row0:row0 + p], use_cache=True, **{key: cache})
        cache.batch_repeat_interleave(B)
        # each row without its first p real tokens, still left-padded: [B, T - p]
        keep = torch.arange(T - p, device=embeds.device).unsqueeze(0)  # [1, T-p]
        real = keep >= (T - lens).unsqueeze(1)  # [B, T-p]
        src = keep + p * real.long()  # a real token comes from p positions further right
        rest = embeds.gather(1, src.unsqueeze(-1).expand(-1, -1, embeds.shape[-1]))  # [B, T-p, D]
        rest_mask = real.long()
        mask = torch.cat([torch.ones(B, p, dtype=rest_mask.dtype, device=embeds.device), rest_mask], 1)  # [B, T]
        pos = (p + rest_mask.cumsum(1) - 1).clamp(min=p)  # [B, T-p]
        out = dec(inputs_embeds=rest, attention_mask=mask, position_ids=pos, use_cache=True, **{key: cache})
        return out.last_hidden_state[:, -1]  # [B, D]

    def items_so_far(self, input_ids: torch.Tensor) -> torch.Tensor:
        """[B, T, I] bool: the atomic items among each row's tokens up to and including position t."""
        return items_so_far(input_ids, self.codec.offset, len(self.codec))

    def _item_loss(self, h: torch.Tensor, y: torch.Tensor, seen: torch.Tensor | None = None) -> ModelOutput:
        loss, logits = item_cross_entropy(self.item_emb, h, y, seen, self.recipe.items.negatives, self.training)
        return ModelOutput(loss=loss, logits=logits)

    def item_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """[.., I] scores of every atomic item token (the item block of the output layer)."""
        if self.item_emb is None:
            raise ValueError("item_logits needs items.tokens=atomic")
        return self.item_emb.logits(hidden)

    # ---------------------------------------------------------------- serving
    def merge_lora(self) -> None:
        """Fold LoRA into the backbone weights (serving: one plain model, no adapter math)."""
        if hasattr(self.backbone, "merge_and_unload"):
            self.backbone = self.backbone.merge_and_unload()

    # ---------------------------------------------------------------- checkpoints
    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Projector, item table, bottleneck adapters and unfrozen norms (LoRA is saved by peft)."""
        tln = self.recipe.adapter.train_layer_norms
        return {n: p.detach().contiguous().cpu() for n, p in self.named_parameters()
                if is_trainable_name(n, tln) and "lora_" not in n}

    def save_pretrained(self, out: str | Path, item_ids: list[str] | None = None,
                        overwrite: bool = True, extra: dict | None = None, write_extra=None) -> Path:
        """Write the checkpoint atomically; `write_extra(tmp_dir)` adds files inside the same unit."""
        with atomic_dir(out, overwrite=overwrite, kind="checkpoint") as tmp:
            cfg = {"genrec_checkpoint": CHECKPOINT_VERSION, **to_dict(self.recipe), **(extra or {})}
            (tmp / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
            save_file(self.trainable_state(), str(tmp / "trainable.safetensors"))
            if hasattr(self.backbone, "save_pretrained") and self.recipe.adapter.type == "lora" \
                    and hasattr(self.backbone, "peft_config"):
                # the embedding matrix only grew by the never-read <img> row: do not store it
                self.backbone.save_pretrained(str(tmp / "lora"), save_embedding_layers=False)
            item_ids = item_ids if item_ids is not None else (self.codec.item_ids if self.codec else None)
            if item_ids is not None:
                (tmp / "item_ids.json").write_text(json.dumps(item_ids), encoding="utf-8")
            self.tokenizer.save_pretrained(str(tmp / "tokenizer"))
            if write_extra is not None:
                write_extra(tmp)
        return Path(out)

    def load_trainables(self, path: str | Path) -> None:
        """Load a checkpoint's trained weights (LoRA + trainable.safetensors) into this model."""
        path = Path(path)
        recipe = self.recipe
        if recipe.adapter.type == "lora":
            from peft import set_peft_model_state_dict
            lw = path / "lora" / "adapter_model.safetensors"
            if not lw.is_file():
                raise CheckpointError(f"{path}: LoRA weights missing ({lw})")
            res = set_peft_model_state_dict(self.backbone, load_file(str(lw)))
            if getattr(res, "unexpected_keys", None):
                raise CheckpointError(f"{path}: LoRA weights do not fit this backbone "
                                      f"(e.g. {res.unexpected_keys[0]})")
        state = load_file(str(path / "trainable.safetensors"))
        own = self.trainable_state()
        missing = sorted(set(own) - set(state))
        extra = sorted(set(state) - set(own))
        shape = [k for k in own if k in state and own[k].shape != state[k].shape]
        if missing or extra or shape:
            why = (f"missing {missing[0]}" if missing else f"unexpected {extra[0]}" if extra else
                   f"{shape[0]} has shape {tuple(state[shape[0]].shape)}, expected {tuple(own[shape[0]].shape)}")
            raise CheckpointError(f"{path}: trainable weights do not fit the model built from its config ({why})")
        self.load_state_dict(state, strict=False)

    @classmethod
    def from_pretrained(cls, path: str | Path, backbone: Backbone | None = None,
                        device: str | torch.device | None = None) -> "GenRecModel":
        path = Path(path)
        cfg_file = path / "config.yaml"
        raw = read_config(path)
        version = raw.pop("genrec_checkpoint", None)
        if version != CHECKPOINT_VERSION:
            raise CheckpointError(f"{path}: checkpoint format {version}, this genrec reads {CHECKPOINT_VERSION}")
        raw = {k: v for k, v in raw.items() if k in ("name", "description", *SECTIONS)}
        recipe = from_dict(Recipe, raw, str(cfg_file))
        ids_file = path / "item_ids.json"
        item_ids = json.loads(ids_file.read_text(encoding="utf-8")) if ids_file.is_file() else None
        model = cls(recipe, backbone, item_ids=item_ids)
        model.load_trainables(path)
        if device is not None:
            model.to(device)
        return model
