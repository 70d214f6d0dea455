// Loading, checking and running the distillation teacher (teacher.h).
#include "train/teacher.h"

#include <torch/torch.h>

#include <iostream>

#include "arch/family_adapter.h"
#include "common/error.h"
#include "dist/world.h"
#include "io/checkpoint_store.h"
#include "model/device.h"
#include "tokenizer/tokenizer.h"
#include "train/sharded_frozen.h"

namespace moeforge::train {

namespace fs = std::filesystem;

namespace {

bool has_tokenizer(const fs::path& dir) { return fs::exists(dir / "tokenizer.json"); }

}  // namespace

// bf16 when most of the stored floating-point bytes are bf16 (kept as mapped views), else fp32.
torch::Dtype stored_precision(const CheckpointStore& store) {
  uint64_t bf16 = 0, other = 0;
  for (const auto& name : store.tensor_names()) {
    const auto t = store.tensor(name);
    const DType d = t.info->dtype;
    if (d == DType::BF16) bf16 += t.info->num_bytes();
    else if (d == DType::F32 || d == DType::F16 || d == DType::F64) other += t.info->num_bytes();
  }
  return bf16 > other ? torch::kBFloat16 : torch::kFloat32;
}

std::string tokenizer_difference(const fs::path& a, const fs::path& b) {
  const Tokenizer ta = Tokenizer::load(a), tb = Tokenizer::load(b);
  const size_t va = ta.vocab_size(), vb = tb.vocab_size();
  if (va != vb) return "vocab " + std::to_string(va) + " vs " + std::to_string(vb);
  for (size_t id = 0; id < va; ++id) {
    const auto x = ta.id_to_token(static_cast<int32_t>(id)), y = tb.id_to_token(static_cast<int32_t>(id));
    if (x != y) return "id " + std::to_string(id) + " is '" + x.value_or("(none)") + "' vs '" + y.value_or("(none)") + "'";
  }
  return "";
}

void Teacher::check_directory(const fs::path& dir) {
  if (!fs::is_directory(dir)) fail("distillation teacher ", dir.string(), ": no such model directory");
  if (!fs::exists(dir / "config.json")) fail("distillation teacher ", dir.string(), ": no config.json (not a model directory)");
}

std::unique_ptr<Teacher> Teacher::load(const fs::path& dir, const model::Transformer& student, const fs::path& student_tokenizer_dir,
                                       const TeacherCheck& check) {
  check_directory(dir);
  auto store = CheckpointStore::open(dir);
  const ModelSpec spec = load_model_spec(*store);
  const std::string who = "distillation teacher " + dir.string();
  // Same tokenizer: compared token by token where the teacher ships one, else by model vocabulary.
  size_t true_vocab = 0;
  if (has_tokenizer(student_tokenizer_dir)) true_vocab = Tokenizer::load(student_tokenizer_dir).vocab_size();
  if (has_tokenizer(dir) && has_tokenizer(student_tokenizer_dir)) {
    const std::string diff = tokenizer_difference(dir, student_tokenizer_dir);
    if (!diff.empty())
      fail(who, ": its tokenizer is not the student's (", student_tokenizer_dir.string(), "): ", diff,
           " (teacher vs student); distillation needs the same token ids");
  } else if (!has_tokenizer(dir)) {
    std::cerr << "moeforge: note: " << who << " has no tokenizer.json; assuming the student's tokenizer\n";
  }
  const int64_t Vs = student.spec().vocab_size, Vt = spec.vocab_size;
  auto t = std::unique_ptr<Teacher>(new Teacher());
  t->dir_ = dir;
  // KD compares the tokenizer's ids only: rows past it (padding, on either side) are never targets.
  const int64_t common = std::min(Vs, Vt);
  const int64_t tokens = true_vocab > 0 ? static_cast<int64_t>(true_vocab) : common;
  if (Vs != Vt && common < (true_vocab > 0 ? tokens : std::max(Vs, Vt)))
    fail(who, ": vocabulary ", Vt, " vs the student's ", Vs, " (the tokenizer has ", tokens, " tokens): not equal up to padding");
  t->kd_vocab_ = std::min(common, tokens);
  if (t->kd_vocab_ < std::max(Vs, Vt))
    std::cerr << "moeforge: note: teacher vocabulary " << Vt << ", student " << Vs << ": the padded tail beyond " << t->kd_vocab_
              << " is left out of the KD loss\n";
  if (check.router_kd) {
    std::vector<int64_t> s_layers, t_layers;
    for (int64_t l = 0; l < student.spec().num_layers; ++l)
      if (student.spec().is_moe[l]) s_layers.push_back(l);
    for (int64_t l = 0; l < spec.num_layers; ++l)
      if (spec.is_moe[l]) t_layers.push_back(l);
    if (s_layers != t_layers || student.spec().moe.num_experts != spec.moe.num_experts)
      fail(who, ": router KD needs the same MoE layers and experts; the student has ", s_layers.size(), " MoE layers of ",
           student.spec().moe.num_experts, " experts, the teacher ", t_layers.size(), " of ", spec.moe.num_experts,
           " (set \"router_weight\": 0)");
  }
  model::LoadOptions load;
  load.device = check.device.empty() ? student.device() : model::parse_device(check.device, "train: --teacher-device");
  load.dtype = stored_precision(*store);
  load.pack_mxfp4 = true;  // a teacher is never trained: its MXFP4 experts stay packed
  load.local_ranks = check.local_ranks;
  if (check.split_over) {  // split while loading, as the student's frozen weights are
    t->split_ = std::make_unique<ShardedFrozen>(*check.split_over, ShardedFrozen::packed_unshared(load.device, *check.split_over));
    t->split_->split_while_loading(load, {});
  }
  t->model_ = model::Transformer::load(dir, load);
  if (t->split_ && check.split_over->is_main())
    std::cerr << "moeforge: ZeRO-3: the teacher's weights of " << t->split_->summary() << "\n";
  return t;
}

Teacher::~Teacher() = default;

TeacherTokens Teacher::run(const torch::Tensor& ids_BT, std::vector<model::LayerRouting>* routing) const {
  torch::NoGradGuard no_grad;
  model::ForwardOptions f;
  f.hidden_only = true;
  f.layer_source = split_.get();  // ZeRO-3: each layer gathered as it runs
  auto out = model_->forward(ids_BT.to(model_->device()), f);
  TeacherTokens t;
  t.hidden_NH = out.hidden.reshape({-1, out.hidden.size(-1)});
  t.lm_head_VH = split_ ? split_->head(model_->weights()) : model_->weights().lm_head;
  if (routing) *routing = std::move(out.routing);
  return t;
}

}  // namespace moeforge::train
