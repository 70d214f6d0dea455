"""Tiny random models of every supported family, built with transformers' own config and model
classes and saved with save_pretrained (safetensors). Shared by the parity tests: info now, the
runtime's logits/gradient parity later.

    from families import FAMILIES, build_tiny_model, quantize_gpt_oss_mxfp4, truth
    model = build_tiny_model("mixtral", "/tmp/x")          # saved to /tmp/x, returns the model
    quantize_gpt_oss_mxfp4("/tmp/gpt_oss")                  # experts -> MXFP4 blocks/scales in place
"""
import json
import os

import torch
import transformers
from safetensors.torch import load_file, save_file

FAMILIES = ["llama", "mistral", "qwen2", "qwen3", "gpt_neo", "mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "gpt_oss",
            "deepseek_v3"]

# Small but not degenerate: GQA (4 heads / 2 kv), several layers, 4-8 experts, odd features on.
_COMMON = dict(vocab_size=300, hidden_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
               intermediate_size=96, max_position_embeddings=256)

_CONFIGS = {
    "llama": lambda: transformers.LlamaConfig(**_COMMON, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2),
    "mistral": lambda: transformers.MistralConfig(**_COMMON, sliding_window=16),
    "qwen2": lambda: transformers.Qwen2Config(**_COMMON, use_sliding_window=True, sliding_window=16,
                                              max_window_layers=1),
    "qwen3": lambda: transformers.Qwen3Config(**_COMMON, head_dim=32),
    "gpt_neo": lambda: transformers.GPTNeoConfig(vocab_size=300, hidden_size=64, num_layers=3, num_heads=4,
                                                 attention_types=[[["global", "local"], 1], [["global"], 1]],
                                                 window_size=8, max_position_embeddings=256,
                                                 bos_token_id=0, eos_token_id=0),
    "mixtral": lambda: transformers.MixtralConfig(**_COMMON, num_local_experts=8, num_experts_per_tok=2),
    "qwen2_moe": lambda: transformers.Qwen2MoeConfig(**_COMMON, num_experts=6, num_experts_per_tok=2,
                                                     moe_intermediate_size=32, shared_expert_intermediate_size=48,
                                                     mlp_only_layers=[1], norm_topk_prob=False),
    "qwen3_moe": lambda: transformers.Qwen3MoeConfig(**_COMMON, num_experts=8, num_experts_per_tok=3,
                                                     moe_intermediate_size=32, head_dim=16, norm_topk_prob=True,
                                                     decoder_sparse_step=1, mlp_only_layers=[0]),
    "olmoe": lambda: transformers.OlmoeConfig(**_COMMON, num_experts=8, num_experts_per_tok=2, eos_token_id=3),
    # hidden and intermediate are multiples of 32 so the experts can be MXFP4-quantised.
    "gpt_oss": lambda: transformers.GptOssConfig(**{**_COMMON, "num_hidden_layers": 4}, num_local_experts=4,
                                                 num_experts_per_tok=2, head_dim=16, sliding_window=8,
                                                 rope_parameters={"rope_type": "yarn", "rope_theta": 150000.0,
                                                                  "factor": 4.0, "beta_fast": 32.0, "beta_slow": 1.0,
                                                                  "truncate": False,
                                                                  "original_max_position_embeddings": 64}),
    # Latent attention with q LoRA, interleaved YaRN RoPE (mscale != mscale_all_dim), a dense first
    # layer, grouped sigmoid routing with a selection bias (set by build_tiny_model), 2 shared experts.
    # num_key_value_heads must equal the heads (MLA has one k/v per head; the default is 128).
    "deepseek_v3": lambda: transformers.DeepseekV3Config(
        **{**_COMMON, "num_key_value_heads": 4}, n_routed_experts=8, num_experts_per_tok=2, n_group=2, topk_group=1,
        n_shared_experts=2, moe_intermediate_size=32, first_k_dense_replace=1, q_lora_rank=32, kv_lora_rank=16,
        qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=24, routed_scaling_factor=2.5, norm_topk_prob=True,
        rms_norm_eps=1e-5, rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                            "beta_fast": 32.0, "beta_slow": 1.0, "mscale": 0.8, "mscale_all_dim": 1.0,
                                            "original_max_position_embeddings": 64}),
}

# Variants of a family for the forward parity test: (label, family, config overrides).
VARIANTS = [
    # plain q_proj (q_lora_rank null), rotate-half RoPE without scaling, no renormalisation, top-3
    ("deepseek_v3_q_proj", "deepseek_v3", dict(q_lora_rank=None, rope_interleave=False, norm_topk_prob=False,
                                               num_experts_per_tok=3, n_group=4, topk_group=2,
                                               rope_parameters={"rope_type": "default", "rope_theta": 10000.0})),
]


def tiny_config(family, **overrides):
    config = _CONFIGS[family]()
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def build_tiny_model(family, out_dir, seed=0, dtype=torch.float32, **overrides):
    """Random tiny model of `family` saved to out_dir (config.json + model.safetensors)."""
    torch.manual_seed(seed)
    config = tiny_config(family, **overrides)
    model = transformers.AutoModelForCausalLM.from_config(config).to(dtype).eval()
    with torch.no_grad():  # some families initialise sinks/biases to zero; make every tensor matter
        for param in model.parameters():
            if torch.count_nonzero(param) == 0:
                param.normal_(0.0, 0.02)
        for name, buffer in model.named_buffers():  # DeepSeek-V3's selection bias starts at zero
            if name.endswith("e_score_correction_bias"):
                buffer.normal_(0.0, 0.05)
    model.save_pretrained(out_dir, safe_serialization=True)
    return model


# --- MXFP4 (independent of moeforge's C++ code and of transformers' dequantiser) -------------------
FP4_VALUES = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0])


def mxfp4_quantize(w):
    """w [..., rows, cols] (cols % 32 == 0) -> blocks [..., rows, cols/32, 16] u8, scales [..., rows, cols/32] u8.
    Scale: smallest power of two with max|x|/2^s <= 6; values round to the nearest FP4 code."""
    w = w.float()
    *prefix, rows, cols = w.shape
    groups = w.reshape(*prefix, rows, cols // 32, 32)
    amax = groups.abs().amax(-1)
    exponent = torch.where(amax > 0, torch.ceil(torch.log2(amax / 6.0)), torch.zeros_like(amax)).clamp(-127, 127)
    scaled = groups / torch.exp2(exponent)[..., None]
    magnitudes = FP4_VALUES[:8]
    codes = (scaled.abs()[..., None] - magnitudes).abs().argmin(-1)
    codes = codes + 8 * ((scaled < 0) & (codes > 0))
    codes = codes.to(torch.uint8)
    blocks = codes[..., 0::2] | (codes[..., 1::2] << 4)
    return blocks.contiguous(), (exponent + 127).to(torch.uint8).contiguous()


def mxfp4_dequantize(blocks, scales):
    """[..., rows, G, 16] + [..., rows, G] -> [..., rows, G*32] float (low nibble first)."""
    lo, hi = FP4_VALUES[(blocks & 0x0F).long()], FP4_VALUES[(blocks >> 4).long()]
    values = torch.stack([lo, hi], dim=-1).reshape(*blocks.shape[:-1], 32)
    values = values * torch.exp2(scales.float() - 127)[..., None]
    return values.reshape(*blocks.shape[:-2], -1)


def quantize_gpt_oss_mxfp4(model_dir):
    """Rewrites a saved GPT-OSS model's experts as MXFP4 blocks/scales (biases bf16), as the real
    checkpoints store them, and adds quantization_config to config.json. Returns the tensors dict."""
    path = os.path.join(model_dir, "model.safetensors")
    tensors = load_file(path)
    out = {}
    for name, t in tensors.items():
        if name.endswith("mlp.experts.gate_up_proj") or name.endswith("mlp.experts.down_proj"):
            # bf16 layout [E, in, out] -> rows = out channels, blocks along the input dim
            blocks, scales = mxfp4_quantize(t.transpose(1, 2))
            out[name + "_blocks"], out[name + "_scales"] = blocks, scales
        elif name.endswith("_proj_bias") and ".mlp.experts." in name:
            out[name] = t.to(torch.bfloat16)
        else:
            out[name] = t
    save_file(out, path, metadata={"format": "pt"})
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    config["quantization_config"] = {"quant_method": "mxfp4",
                                     "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                                                "model.embed_tokens", "lm_head"]}
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    return out


def truth(model):
    """What `moeforge info` must report, computed from the Python model itself."""
    config = model.config
    total = sum(p.numel() for p in model.parameters())  # tied embeddings are one Parameter
    # DeepSeek-V3's e_score_correction_bias is a buffer, but a checkpoint tensor moeforge counts.
    total += sum(b.numel() for n, b in model.named_buffers() if n.endswith("e_score_correction_bias"))
    num_experts = getattr(config, "num_local_experts", None) or getattr(config, "num_experts", None) or 0
    top_k = getattr(config, "num_experts_per_tok", 0) if num_experts else 0
    routed = sum(p.numel() for n, p in model.named_parameters() if ".experts." in n)
    active = total - (routed // num_experts) * (num_experts - top_k) if num_experts else total
    return {
        "num_layers": config.num_hidden_layers if hasattr(config, "num_hidden_layers") else config.num_layers,
        "num_experts": num_experts,
        "top_k": top_k,
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "total_params": total,
        "active_params": active,
        "tie_word_embeddings": bool(getattr(config, "tie_word_embeddings", False)),
    }
