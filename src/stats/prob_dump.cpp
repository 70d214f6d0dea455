// Router-probability dump buffering and its .npz / .safetensors writers (layout in prob_dump.h).
#include "stats/prob_dump.h"

#include <torch/torch.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "io/safetensors_file.h"
#include "stats/npz_writer.h"

namespace moeforge::stats {
namespace {

template <typename T>
std::string_view bytes_of(const std::vector<T>& v) {
  return {reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T)};
}

// A NumPy "<U{n}" array of strings, each padded with NULs to the longest.
std::pair<std::string, std::string> unicode_array(const std::vector<std::string>& items) {
  size_t width = 1;
  std::vector<std::string> encoded;
  for (const auto& s : items) {
    encoded.push_back(utf32le(s));
    width = std::max(width, encoded.back().size() / 4);
  }
  std::string data;
  for (auto& e : encoded) data += e + std::string(width * 4 - e.size(), '\0');
  return {"<U" + std::to_string(width), data};
}

}  // namespace

ProbDump::ProbDump(int64_t num_layers, int64_t num_experts, int64_t reserve_tokens)
    : layers_(num_layers), experts_(num_experts) {
  if (reserve_tokens > 0) {
    probs_.reserve(static_cast<size_t>(reserve_tokens * num_layers * num_experts));
    token_ids_.reserve(static_cast<size_t>(reserve_tokens));
    token_domain_.reserve(static_cast<size_t>(reserve_tokens));
  }
}

void ProbDump::append(const torch::Tensor& probs_VLE, const std::vector<int32_t>& ids, const std::vector<int32_t>& domains) {
  if (!probs_VLE.defined() || probs_VLE.size(0) == 0) return;
  auto half = probs_VLE.to(torch::kCPU, torch::kHalf).contiguous();  // [V, L, E]
  if (half.size(1) != layers_ || half.size(2) != experts_ || half.size(0) != static_cast<int64_t>(ids.size()))
    fail("router probability dump: batch has shape mismatch");
  const size_t at = probs_.size(), n = static_cast<size_t>(half.numel());
  probs_.resize(at + n);
  std::memcpy(probs_.data() + at, half.data_ptr<at::Half>(), n * sizeof(uint16_t));
  token_ids_.insert(token_ids_.end(), ids.begin(), ids.end());
  token_domain_.insert(token_domain_.end(), domains.begin(), domains.end());
}

void ProbDump::write(const std::filesystem::path& dir, const DumpInfo& info) const {
  const int64_t T = tokens();
  const std::vector<int64_t> scalars = {T, layers_, experts_, info.top_k};
  nlohmann::json meta = {{"num_tokens", T}, {"num_layers", layers_}, {"num_experts", experts_}, {"top_k", info.top_k},
                         {"model_name", info.model_name}, {"moe_layers", info.moe_layers}, {"domains", info.domains},
                         {"layout", "[tokens, moe_layers, experts] fp16 router probabilities"}};
  const std::string meta_text = meta.dump();
  const std::string name32 = utf32le(info.model_name), meta32 = utf32le(meta_text);
  auto domains = unicode_array(info.domains.empty() ? std::vector<std::string>{""} : info.domains);
  const int64_t D = info.domains.empty() ? 1 : static_cast<int64_t>(info.domains.size());
  std::vector<NpyArray> arrays = {
      {"router_probs", "<f2", {T, layers_, experts_}, bytes_of(probs_)},
      {"token_ids", "<i4", {T}, bytes_of(token_ids_)},
      {"token_domain", "<i4", {T}, bytes_of(token_domain_)},
      {"moe_layers", "<i8", {layers_}, bytes_of(info.moe_layers)},
      {"num_tokens", "<i8", {}, {reinterpret_cast<const char*>(&scalars[0]), 8}},
      {"num_layers", "<i8", {}, {reinterpret_cast<const char*>(&scalars[1]), 8}},
      {"num_experts", "<i8", {}, {reinterpret_cast<const char*>(&scalars[2]), 8}},
      {"top_k", "<i8", {}, {reinterpret_cast<const char*>(&scalars[3]), 8}},
      {"model_name", "<U" + std::to_string(std::max<size_t>(1, name32.size() / 4)), {},
       name32.empty() ? std::string_view("\0\0\0\0", 4) : std::string_view(name32)},
      {"domains", domains.first, {D}, domains.second},
      {"metadata", "<U" + std::to_string(meta32.size() / 4), {}, meta32},
  };
  write_npz(dir / "router_probs.npz", arrays);

  // safetensors, streamed: header JSON padded to 8 bytes, then the tensors back to back.
  struct Entry {
    const char* name;
    const char* dtype;
    std::vector<int64_t> shape;
    std::string_view data;
  };
  const std::vector<Entry> entries = {{"router_probs", "F16", {T, layers_, experts_}, bytes_of(probs_)},
                                      {"token_ids", "I32", {T}, bytes_of(token_ids_)},
                                      {"token_domain", "I32", {T}, bytes_of(token_domain_)},
                                      {"moe_layers", "I64", {layers_}, bytes_of(info.moe_layers)}};
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  for (const auto& e : entries) {
    header[e.name] = {{"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {offset, offset + e.data.size()}}};
    offset += e.data.size();
  }
  nlohmann::json md = {{"format", "pt"},
                       {"num_tokens", std::to_string(T)},
                       {"num_layers", std::to_string(layers_)},
                       {"num_experts", std::to_string(experts_)},
                       {"top_k", std::to_string(info.top_k)},
                       {"model_name", info.model_name},
                       {"domains", nlohmann::json(info.domains).dump()}};
  header["__metadata__"] = md;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const auto path = dir / "router_probs.safetensors";
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) fail(path.string(), ": cannot create file");
  const uint64_t n = text.size();
  char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  file.write(len, 8);
  file.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto& e : entries) file.write(e.data.data(), static_cast<std::streamsize>(e.data.size()));
  file.flush();
  if (!file) fail(path.string(), ": write failed (disk full?)");
}

torch::Tensor read_prob_dump(const std::filesystem::path& safetensors_file) {
  auto file = SafetensorsFile::open(safetensors_file);
  const TensorInfo* info = file->find("router_probs");
  if (!info || info->dtype != DType::F16 || info->shape.size() != 3)
    fail(safetensors_file.string(), ": has no F16 [tokens, layers, experts] tensor 'router_probs'");
  ByteView bytes = file->bytes(*info);
  auto view = torch::from_blob(const_cast<uint8_t*>(bytes.data), info->shape, torch::kHalf);
  return view.to(torch::kFloat);  // owned copy [T, L, E]
}

}  // namespace moeforge::stats
