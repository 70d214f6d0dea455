// Internal: one accessor per family file, collected by family_registry.cpp. Explicit calls (not
// static self-registration) so the linker keeps every family in the static library.
#pragma once

#include "arch/family_adapter.h"

namespace moeforge::families {

const FamilyAdapter& llama();
const FamilyAdapter& mistral();
const FamilyAdapter& qwen2();
const FamilyAdapter& qwen3();
const FamilyAdapter& gpt_neo();
const FamilyAdapter& mixtral();
const FamilyAdapter& qwen2_moe();
const FamilyAdapter& qwen3_moe();
const FamilyAdapter& olmoe();
const FamilyAdapter& gpt_oss();
const FamilyAdapter& deepseek_v3();
const FamilyAdapter& gpt_neo_moe();

}  // namespace moeforge::families
