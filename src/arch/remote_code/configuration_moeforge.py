# Written by moeforge beside the weights (Hugging Face custom-architecture convention): the family's
# own configuration class, unchanged. moeforge's extra keys stay plain attributes that the modeling
# file reads (see src/arch/moeforge_extensions.h in moeforge):
#   moeforge_shared_expert_intermediate_size  one always-on shared expert per MoE layer
#   moeforge_shared_expert_gate               "fixed" | "learned" | "sigmoid" (default "fixed")
#   moeforge_shared_expert_scale              the fixed gate's factor (default 0.2)
#   moeforge_selection_bias                   true: per MoE layer tensor mlp.moeforge_selection_bias [E],
#                                             added to the router's selection scores only
# GPT-Neo MoE is moeforge's own family (no transformers class holds it): GPT-Neo's configuration with
# the Qwen-MoE keys num_experts, num_experts_per_tok, moe_intermediate_size, norm_topk_prob,
# decoder_sparse_step, mlp_only_layers and router_aux_loss_coef as plain attributes.
from transformers.models.gpt_neo.configuration_gpt_neo import GPTNeoConfig
from transformers.models.gpt_oss.configuration_gpt_oss import GptOssConfig
from transformers.models.mixtral.configuration_mixtral import MixtralConfig
from transformers.models.olmoe.configuration_olmoe import OlmoeConfig
from transformers.models.qwen2_moe.configuration_qwen2_moe import Qwen2MoeConfig
from transformers.models.qwen3_moe.configuration_qwen3_moe import Qwen3MoeConfig


class MoeforgeMixtralConfig(MixtralConfig):
    pass


class MoeforgeQwen2MoeConfig(Qwen2MoeConfig):
    pass


class MoeforgeQwen3MoeConfig(Qwen3MoeConfig):
    pass


class MoeforgeOlmoeConfig(OlmoeConfig):
    pass


class MoeforgeGptOssConfig(GptOssConfig):
    pass


class MoeforgeGptNeoMoeConfig(GPTNeoConfig):
    model_type = "gpt_neo_moe"
