# Written by moeforge beside the weights (Hugging Face custom-architecture convention). Each class
# is transformers' own family model with its sparse MoE blocks replaced by a subclass that adds only
# what moeforge computes and the family cannot express, exactly as moeforge's runtime does
# (src/model/router.cpp, src/model/transformer.cpp in moeforge):
#   - a selection-only router bias: added to the scores that choose the top-k experts, never to the
#     combine weights (probabilities for softmax routers, raw logits for GPT-OSS);
#   - one shared expert per MoE layer, run on every token and added to the routed output, with the
#     family's activation (SwiGLU; GPT-OSS's clamped GLU) and no biases, weighed by a fixed scale,
#     a learned scale tensor or sigmoid(shared_expert_gate(x)).
# GPT-Neo MoE (moeforge's own family) is GPT-Neo with the MLP of each sparse layer replaced by a
# softmax-then-top-k router over GPT-Neo MLPs (c_fc/c_proj with biases, gelu_new); its shared expert
# is an ungated GELU MLP without biases.
# Load with AutoModelForCausalLM.from_pretrained(directory, trust_remote_code=True).
import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import ACT2FN
from transformers.models.gpt_neo.modeling_gpt_neo import GPTNeoForCausalLM, GPTNeoMLP
from transformers.models.gpt_oss.modeling_gpt_oss import GptOssForCausalLM, GptOssMLP
from transformers.models.mixtral.modeling_mixtral import MixtralForCausalLM, MixtralSparseMoeBlock
from transformers.models.olmoe.modeling_olmoe import OlmoeForCausalLM, OlmoeSparseMoeBlock
from transformers.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeForCausalLM, Qwen2MoeSparseMoeBlock
from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeForCausalLM, Qwen3MoeSparseMoeBlock

from .configuration_moeforge import (
    MoeforgeGptNeoMoeConfig,
    MoeforgeGptOssConfig,
    MoeforgeMixtralConfig,
    MoeforgeOlmoeConfig,
    MoeforgeQwen2MoeConfig,
    MoeforgeQwen3MoeConfig,
)


class MoeforgeSharedExpert(nn.Module):
    """down(act(gate x, up x)) without biases; act is SwiGLU or GPT-OSS's clamped GLU."""

    def __init__(self, config, width, clamped_glu):
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, width, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, width, bias=False)
        self.down_proj = nn.Linear(width, config.hidden_size, bias=False)
        self.clamped_glu = clamped_glu
        if clamped_glu:
            self.alpha, self.limit = config.swiglu_alpha, config.swiglu_limit

    def forward(self, x):
        gate, up = self.gate_proj(x), self.up_proj(x)
        if self.clamped_glu:
            gate = gate.clamp(max=self.limit)
            up = up.clamp(min=-self.limit, max=self.limit)
            hidden = (up + 1) * (gate * torch.sigmoid(gate * self.alpha))
        else:
            hidden = F.silu(gate) * up
        return self.down_proj(hidden)


class MoeforgeGeluSharedExpert(nn.Module):
    """c_proj(act(c_fc x)) without biases: GPT-Neo MoE's shared expert."""

    def __init__(self, config, width):
        super().__init__()
        self.c_fc = nn.Linear(config.hidden_size, width, bias=False)
        self.c_proj = nn.Linear(width, config.hidden_size, bias=False)
        self.act = ACT2FN[config.activation_function]

    def forward(self, x):
        return self.c_proj(self.act(self.c_fc(x)))


class MoeforgeMoeMixin:
    """What moeforge adds to a family's sparse MoE block: selection bias, shared expert."""

    router_name = "gate"            # the block's router submodule
    topk_then_softmax = False       # GPT-OSS: top-k on logits, softmax over the k
    returns_router_scores = False   # GPT-OSS's block returns (hidden, router scores)
    native_shared_expert = False    # Qwen2-MoE's own sigmoid-gated shared expert

    def moeforge_init(self, config):
        router = getattr(self, self.router_name)
        if getattr(config, "moeforge_selection_bias", False):
            self.register_buffer("moeforge_selection_bias", torch.zeros(router.num_experts))
        else:
            self.moeforge_selection_bias = None
        width = getattr(config, "moeforge_shared_expert_intermediate_size", None)
        self.moeforge_shared_gate = "native" if self.native_shared_expert else None
        if width:
            self.moeforge_shared_gate = getattr(config, "moeforge_shared_expert_gate", "fixed")
            self.shared_expert = self.moeforge_shared_expert(config, width)
            if self.moeforge_shared_gate == "sigmoid":
                self.shared_expert_gate = nn.Linear(config.hidden_size, 1, bias=False)
            elif self.moeforge_shared_gate == "learned":
                self.shared_expert_scale = nn.Parameter(torch.ones(1))
            elif self.moeforge_shared_gate == "fixed":
                self.moeforge_shared_scale = float(getattr(config, "moeforge_shared_expert_scale", 0.2))
            else:
                raise ValueError(f"moeforge_shared_expert_gate is '{self.moeforge_shared_gate}'; expected fixed, learned or sigmoid")

    def moeforge_shared_expert(self, config, width):
        return MoeforgeSharedExpert(config, width, clamped_glu=self.topk_then_softmax)

    def moeforge_route(self, x):
        """(combine weights [N, k], expert ids [N, k]) as moeforge's route()."""
        router = getattr(self, self.router_name)
        logits = F.linear(x, router.weight, getattr(router, "bias", None)).float()
        bias = None if self.moeforge_selection_bias is None else self.moeforge_selection_bias.float()
        if self.topk_then_softmax:
            select = logits if bias is None else logits + bias
            ids = torch.topk(select, router.top_k, dim=-1).indices
            return torch.softmax(logits.gather(1, ids), dim=-1), ids
        probs = torch.softmax(logits, dim=-1)
        select = probs if bias is None else probs + bias
        ids = torch.topk(select, router.top_k, dim=-1).indices
        weights = probs.gather(1, ids)
        if getattr(router, "norm_topk_prob", True):  # Mixtral always renormalises
            weights = weights / weights.sum(dim=-1, keepdim=True)
        return weights, ids

    def moeforge_shared(self, x):
        kind = self.moeforge_shared_gate
        if kind is None:
            return None
        out = self.shared_expert(x)
        if kind in ("sigmoid", "native"):
            return torch.sigmoid(self.shared_expert_gate(x)) * out
        if kind == "learned":
            return out * self.shared_expert_scale
        return out * self.moeforge_shared_scale

    def forward(self, hidden_states):
        batch, length, hidden = hidden_states.shape
        x = hidden_states.reshape(-1, hidden)
        weights, ids = self.moeforge_route(x)
        out = self.experts(x, ids, weights.to(x.dtype))
        shared = self.moeforge_shared(x)
        if shared is not None:
            out = out + shared
        out = out.reshape(batch, length, hidden)
        return (out, weights) if self.returns_router_scores else out


class MoeforgeMixtralSparseMoeBlock(MoeforgeMoeMixin, MixtralSparseMoeBlock):
    def __init__(self, config):
        MixtralSparseMoeBlock.__init__(self, config)
        self.moeforge_init(config)


class MoeforgeQwen2MoeSparseMoeBlock(MoeforgeMoeMixin, Qwen2MoeSparseMoeBlock):
    native_shared_expert = True

    def __init__(self, config):
        Qwen2MoeSparseMoeBlock.__init__(self, config)
        self.moeforge_init(config)


class MoeforgeQwen3MoeSparseMoeBlock(MoeforgeMoeMixin, Qwen3MoeSparseMoeBlock):
    def __init__(self, config):
        Qwen3MoeSparseMoeBlock.__init__(self, config)
        self.moeforge_init(config)


class MoeforgeOlmoeSparseMoeBlock(MoeforgeMoeMixin, OlmoeSparseMoeBlock):
    def __init__(self, config):
        OlmoeSparseMoeBlock.__init__(self, config)
        self.moeforge_init(config)


class MoeforgeGptOssMLP(MoeforgeMoeMixin, GptOssMLP):
    router_name = "router"
    topk_then_softmax = True
    returns_router_scores = True

    def __init__(self, config):
        GptOssMLP.__init__(self, config)
        self.moeforge_init(config)


class MoeforgeGptNeoMoeRouter(nn.Linear):
    """The router: a bias-free linear layer holding what routing reads."""

    def __init__(self, config):
        experts = getattr(config, "num_experts", 8)  # moeforge's defaults for absent keys
        super().__init__(config.hidden_size, experts, bias=False)
        self.num_experts = experts
        self.top_k = getattr(config, "num_experts_per_tok", 2)
        self.norm_topk_prob = getattr(config, "norm_topk_prob", False)


class MoeforgeGptNeoMoeExperts(nn.ModuleList):
    """GPT-Neo MLPs of width moe_intermediate_size; each token's top-k outputs mixed by weight."""

    def __init__(self, config):
        width = getattr(config, "moe_intermediate_size", None) or config.intermediate_size
        super().__init__([GPTNeoMLP(width, config) for _ in range(getattr(config, "num_experts", 8))])

    def forward(self, x, ids, weights):
        out = torch.zeros_like(x)
        for e, expert in enumerate(self):
            token, slot = torch.where(ids == e)
            if token.numel():
                out.index_add_(0, token, expert(x[token]) * weights[token, slot, None])
        return out


class MoeforgeGptNeoMoeBlock(MoeforgeMoeMixin, nn.Module):
    def __init__(self, config):
        nn.Module.__init__(self)
        self.gate = MoeforgeGptNeoMoeRouter(config)
        self.experts = MoeforgeGptNeoMoeExperts(config)
        self.moeforge_init(config)

    def moeforge_shared_expert(self, config, width):
        return MoeforgeGeluSharedExpert(config, width)


def _gpt_neo_moe_layers(config):
    """Qwen-MoE's rule: sparse unless listed in mlp_only_layers, every decoder_sparse_step-th layer."""
    step = getattr(config, "decoder_sparse_step", 1) or 1
    dense = set(getattr(config, "mlp_only_layers", None) or [])
    experts = getattr(config, "num_experts", 8)
    return [l for l in range(config.num_layers) if l not in dense and experts > 0 and (l + 1) % step == 0]


def _replace_moe_blocks(model, family_block, moeforge_block):
    for layer in model.model.layers:
        if type(layer.mlp) is family_block:
            layer.mlp = moeforge_block(model.config)


class MoeforgeMixtralForCausalLM(MixtralForCausalLM):
    config_class = MoeforgeMixtralConfig

    def __init__(self, config):
        super().__init__(config)
        _replace_moe_blocks(self, MixtralSparseMoeBlock, MoeforgeMixtralSparseMoeBlock)


class MoeforgeQwen2MoeForCausalLM(Qwen2MoeForCausalLM):
    config_class = MoeforgeQwen2MoeConfig

    def __init__(self, config):
        super().__init__(config)
        _replace_moe_blocks(self, Qwen2MoeSparseMoeBlock, MoeforgeQwen2MoeSparseMoeBlock)


class MoeforgeQwen3MoeForCausalLM(Qwen3MoeForCausalLM):
    config_class = MoeforgeQwen3MoeConfig

    def __init__(self, config):
        super().__init__(config)
        _replace_moe_blocks(self, Qwen3MoeSparseMoeBlock, MoeforgeQwen3MoeSparseMoeBlock)


class MoeforgeOlmoeForCausalLM(OlmoeForCausalLM):
    config_class = MoeforgeOlmoeConfig

    def __init__(self, config):
        super().__init__(config)
        _replace_moe_blocks(self, OlmoeSparseMoeBlock, MoeforgeOlmoeSparseMoeBlock)


class MoeforgeGptOssForCausalLM(GptOssForCausalLM):
    config_class = MoeforgeGptOssConfig

    def __init__(self, config):
        super().__init__(config)
        _replace_moe_blocks(self, GptOssMLP, MoeforgeGptOssMLP)


class MoeforgeGptNeoMoeForCausalLM(GPTNeoForCausalLM):
    config_class = MoeforgeGptNeoMoeConfig

    def __init__(self, config):
        super().__init__(config)
        for l in _gpt_neo_moe_layers(config):
            self.transformer.h[l].mlp = MoeforgeGptNeoMoeBlock(config)


# transformers 5 converts the family's on-disk names and per-expert tensors when loading, but not for
# custom code unless the conversion is registered for the class: reuse the family's own conversion.
try:
    from transformers.conversion_mapping import get_checkpoint_conversion_mapping, register_checkpoint_conversion_mapping

    for _cls, _family in [(MoeforgeMixtralForCausalLM, "mixtral"), (MoeforgeQwen2MoeForCausalLM, "qwen2_moe"),
                          (MoeforgeQwen3MoeForCausalLM, "qwen3_moe"), (MoeforgeOlmoeForCausalLM, "olmoe"),
                          (MoeforgeGptOssForCausalLM, "gpt_oss")]:
        _mapping = get_checkpoint_conversion_mapping(_family)
        if _mapping:
            register_checkpoint_conversion_mapping(_cls.__name__, _mapping, overwrite=True)
except ImportError:  # transformers 4.x loads the on-disk names as they are
    pass
