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

namespace {

std::string step_name(int64_t global_step) {
  char name[32];
  std::snprintf(name, sizeof(name), "step-%08lld", static_cast<long long>(global_step));
  return name;
}

fs::path shard_dir(const fs::path& dir, int64_t global_step, int rank) {
  return dir / ("." + step_name(global_step) + ".rank-" + std::to_string(rank));
}

std::string shard_file(int rank, int ranks) { return "optimizer.rank-" + std::to_string(rank) + "-of-" + std::to_string(ranks) + ".safetensors"; }

// Streamed to the file tensor by tensor (CheckpointWriter: temporary directory, renamed into place at
// commit): a checkpoint never costs a second copy of the state in memory. Commit is the caller's.
std::unique_ptr<CheckpointWriter> tensor_writer(const fs::path& final_dir, const std::map<std::string, torch::Tensor>& tensors,
                                                const std::string& prefix) {
  std::vector<TensorDecl> decls;
  for (const auto& [key, t] : tensors) decls.push_back({key, from_scalar_type(t.scalar_type()), t.sizes().vec()});
  WriterOptions options;
  options.max_shard_bytes = UINT64_MAX;  // one <prefix>.safetensors
  options.metadata = {};
  options.file_prefix = prefix;
  options.overwrite = true;  // a step's earlier, unfinished save
  auto writer = std::make_unique<CheckpointWriter>(final_dir, std::move(decls), options);
  for (const auto& [key, t] : tensors) {
    auto c = t.detach().to(torch::kCPU).contiguous();  // no copy for a contiguous CPU tensor
    writer->write(key, ByteView{static_cast<const uint8_t*>(c.data_ptr()), c.nbytes()});
  }
  return writer;
}

}  // namespace

void save_checkpoint_shard(const fs::path& run_dir, int64_t global_step, int rank, int ranks,
                           const std::map<std::string, torch::Tensor>& tensors) {
  const fs::path dir = run_dir / "checkpoints";
  fs::create_directories(dir);
  auto writer = tensor_writer(shard_dir(dir, global_step, rank), tensors, "optimizer");
  writer->add_file("world.json", nlohmann::json({{"rank", rank}, {"ranks", ranks}}).dump() + "\n");
  writer->commit();
}

fs::path save_checkpoint(const fs::path& run_dir, const RunState& state, int64_t keep, int shard_ranks) {
  const fs::path dir = run_dir / "checkpoints";
  fs::create_directories(dir);
  const std::string name = step_name(state.global_step);
  const fs::path final_dir = dir / name;
  remove_stale_temps(dir);  // what an interrupted save of any step left in checkpoints/
  auto writer = tensor_writer(final_dir, state.tensors, "tensors");
  nlohmann::json shards = nlohmann::json::array();
  for (int r = 1; r < shard_ranks; ++r) {  // the other ranks' shares, complete (they wrote them before the barrier)
    const fs::path from = shard_dir(dir, state.global_step, r) / "optimizer.safetensors";
    if (!fs::exists(from)) fail(from.string(), ": rank ", r, "'s share of checkpoint ", name, " is missing");
    fs::rename(from, writer->temporary_directory() / shard_file(r, shard_ranks));
    shards.push_back(shard_file(r, shard_ranks));
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
  if (!shards.empty()) j["shards"] = shards;
  writer->add_file("state.json", j.dump(1) + "\n");
  writer->commit();
  write_file_atomic(dir / "latest", name + "\n");
  // Prune older checkpoints (never the one just written) and the shard directories now adopted or
  // left by an interrupted save.
  std::vector<fs::path> all;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string file = entry.path().filename().string();
    if (entry.is_directory() && file.rfind("step-", 0) == 0) all.push_back(entry.path());
    if (entry.is_directory() && file.rfind(".step-", 0) == 0 && file.find(".rank-") != std::string::npos &&
        file.substr(1, name.size()) <= name)
      remove_tree_or_fail(entry.path());
  }
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
  std::vector<std::string> files{"tensors.safetensors"};
  for (const auto& shard : j.value("shards", nlohmann::json::array())) files.push_back(shard.get<std::string>());
  for (const auto& file : files) {  // a sharded optimiser's shares join the rest: any number of ranks resumes
    if (!fs::exists(cp / file)) fail((cp / "state.json").string(), ": lists ", file, ", which is missing");
    auto store = CheckpointStore::open(cp / file);
    for (const auto& name_t : store->tensor_names()) s.tensors[name_t] = view_tensor(store->tensor(name_t)).clone();
  }
  return s;
}

}  // namespace moeforge::train
