// The distillation teacher of a run: loaded once (frozen, no gradient, in its stored precision: bf16
// checkpoints stay bf16 zero-copy views), checked against the student before any training (same
// tokenizer; vocabularies equal up to a padded tail; the same MoE layers and experts when the router
// is distilled), and run under no-grad on each micro-batch.
#pragma once

#include <torch/types.h>

#include <filesystem>
#include <memory>
#include <vector>

#include "model/transformer.h"
#include "train/distill.h"

namespace moeforge {
class CheckpointStore;
}
namespace moeforge::dist {
class World;
}

namespace moeforge::train {

class ShardedFrozen;  // train/sharded_frozen.h

// bf16 when most of a checkpoint's stored floating-point bytes are bf16 (kept as mapped views), else fp32.
torch::Dtype stored_precision(const CheckpointStore& store);

struct TeacherCheck {
  bool router_kd = false;  // some phase distils the router: MoE layers and expert counts must match
  std::string device;      // where the teacher runs; "" = the student's device
  int local_ranks = 1;     // processes of the run on this machine (model::LoadOptions::local_ranks)
  // ZeRO-3 (train --zero 3): the teacher's weights split over these ranks as the student's frozen
  // ones are (train/sharded_frozen.h), gathered per layer as it runs.
  dist::World* split_over = nullptr;
};

class Teacher {
 public:
  ~Teacher();
  // Refuses, naming both sides, a teacher that does not share the student's tokenizer.
  static std::unique_ptr<Teacher> load(const std::filesystem::path& dir, const model::Transformer& student,
                                       const std::filesystem::path& student_tokenizer_dir, const TeacherCheck& check);
  // Cheap checks of a teacher directory, before the student is loaded.
  static void check_directory(const std::filesystem::path& dir);

  // The teacher's side of one micro-batch (ids [B, T] int64): final hidden states and router logits.
  TeacherTokens run(const torch::Tensor& ids_BT, std::vector<model::LayerRouting>* routing) const;

  int64_t kd_vocab() const { return kd_vocab_; }
  const std::filesystem::path& dir() const { return dir_; }
  const model::Transformer& model() const { return *model_; }

 private:
  std::unique_ptr<model::Transformer> model_;
  std::unique_ptr<ShardedFrozen> split_;  // ZeRO-3: where its split weights are gathered from
  std::filesystem::path dir_;
  int64_t kd_vocab_ = 0;
};

// The token ids two tokenizers give different meanings to: "" when they are the same, else a
// one-line description ("vocab 32000 vs 50257", "id 17 is 'a' vs 'b'").
std::string tokenizer_difference(const std::filesystem::path& a, const std::filesystem::path& b);

}  // namespace moeforge::train
