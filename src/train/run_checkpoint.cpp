// Atomic run checkpoints (see run_checkpoint.h).
#include "train/run_checkpoint.h"

#include <unistd.h>

#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "common/error.h"
#include "common/remove_tree.h"
#include "io/atomic_file.h"
#include "io/checkpoint_store.h"
#include "io/checkpoint_writer.h"
#include "io/stale_temps.h"
#include "tensor/torch_bridge.h"

namespace moeforge::train {

namespace fs = std::filesystem;

nlohmann::json selection_to_json(const Selection& selection) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, mask] : selection) {
    nlohmann::json m = nlohmann::json::array();
    for (bool b : mask) m.push_back(b);
    j[name] = m;
  }
  return j;
}

Selection selection_from_json(const nlohmann::json& j) {
  Selection out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    std::vector<bool> mask;
    for (const auto& b : it.value()) mask.push_back(b.get<bool>());
    out[it.key()] = mask;
  }
  return out;
}

fs::path save_checkpoint(const fs::path& run_dir, const RunState& state, int64_t keep) {
  const fs::path dir = run_dir / "checkpoints";
  fs::create_directories(dir);
  char name[32];
  std::snprintf(name, sizeof(name), "step-%08lld", static_cast<long long>(state.global_step));
  const fs::path final_dir = dir / name;
  remove_stale_temps(dir);  // what an interrupted save of any step left in checkpoints/
  // Streamed to the file tensor by tensor (CheckpointWriter: temporary directory, renamed into place
  // at commit): a checkpoint never costs a second copy of the state in memory.
  std::vector<TensorDecl> decls;
  for (const auto& [key, t] : state.tensors) decls.push_back({key, from_scalar_type(t.scalar_type()), t.sizes().vec()});
  WriterOptions options;
  options.max_shard_bytes = UINT64_MAX;  // one tensors.safetensors
  options.metadata = {};
  options.file_prefix = "tensors";
  options.overwrite = true;  // a step's earlier, unfinished save
  CheckpointWriter writer(final_dir, std::move(decls), options);
  for (const auto& [key, t] : state.tensors) {
    auto c = t.detach().to(torch::kCPU).contiguous();  // no copy for a contiguous CPU tensor
    writer.write(key, ByteView{static_cast<const uint8_t*>(c.data_ptr()), c.nbytes()});
  }
  nlohmann::json j = {{"version", 1},
                      {"phase", state.phase},
                      {"step_in_phase", state.step_in_phase},
                      {"global_step", state.global_step},
                      {"data_position", state.data_position.to_json()},
                      {"bad_streak", state.bad_streak},
                      {"optimizer_steps", state.optimizer_steps},
                      {"changed", selection_to_json(state.changed)},
                      {"extra", state.extra}};
  writer.add_file("state.json", j.dump(1) + "\n");
  writer.commit();
  write_file_atomic(dir / "latest", std::string(name) + "\n");
  // Prune older checkpoints (never the one just written).
  std::vector<fs::path> all;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_directory() && entry.path().filename().string().rfind("step-", 0) == 0) all.push_back(entry.path());
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i + static_cast<size_t>(keep) < all.size(); ++i)
    if (all[i] != final_dir) remove_tree_or_fail(all[i]);
  return final_dir;
}

std::optional<RunState> load_latest_checkpoint(const fs::path& run_dir) {
  const fs::path dir = run_dir / "checkpoints";
  if (!fs::exists(dir / "latest")) return std::nullopt;
  std::ifstream in(dir / "latest");
  std::string name;
  in >> name;
  const fs::path cp = dir / name;
  if (name.empty() || !fs::exists(cp / "state.json")) fail(run_dir.string(), ": checkpoints/latest names missing checkpoint '", name, "'");
  nlohmann::json j = read_json_file(cp / "state.json");
  RunState s;
  try {
    s.phase = j.at("phase").get<int64_t>();
    s.step_in_phase = j.at("step_in_phase").get<int64_t>();
    s.global_step = j.at("global_step").get<int64_t>();
    s.data_position = data::Position::from_json(j.at("data_position"));
    s.bad_streak = j.at("bad_streak").get<int64_t>();
    s.optimizer_steps = j.at("optimizer_steps").get<int64_t>();
    s.changed = selection_from_json(j.at("changed"));
    s.extra = j.value("extra", nlohmann::json::object());
  } catch (const nlohmann::json::exception& e) {
    fail((cp / "state.json").string(), ": ", e.what());
  }
  auto store = CheckpointStore::open(cp / "tensors.safetensors");
  for (const auto& name_t : store->tensor_names()) s.tensors[name_t] = view_tensor(store->tensor(name_t)).clone();
  return s;
}

}  // namespace moeforge::train
