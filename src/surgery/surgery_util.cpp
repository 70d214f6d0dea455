// Helpers shared by the surgery commands (see surgery_util.h).
#include "surgery/surgery_util.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "arch/float_convert.h"
#include "common/error.h"
#include "common/strings.h"

namespace moeforge::surgery {

std::vector<float> normal_floats(size_t n, double mean, double std, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> dist(0.0, 1.0);
  std::vector<float> out(n);
  for (auto& v : out) v = static_cast<float>(mean + std * dist(rng));
  return out;
}

std::vector<float> uniform_floats(size_t n, double bound, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(-bound, bound);
  std::vector<float> out(n);
  for (auto& v : out) v = static_cast<float>(dist(rng));
  return out;
}

void write_floats(CheckpointWriter& writer, const std::string& name, DType dtype, const std::vector<float>& values) {
  std::vector<uint8_t> bytes = encode_floats(dtype, values);
  writer.write(name, ByteView{bytes.data(), bytes.size()});
}

OutputGroup float_tensor_group(GroupKind kind, const std::string& what, const std::string& name, DType dtype,
                               std::vector<int64_t> shape, std::function<std::vector<float>()> make,
                               uint64_t bytes_read) {
  OutputGroup g;
  g.kind = kind;
  g.what = what;
  g.decls.push_back(TensorDecl{name, dtype, shape});
  g.bytes_read = bytes_read;
  uint64_t count = 1;
  for (int64_t d : shape) count *= static_cast<uint64_t>(d);
  g.produce = [name, dtype, count, make](CheckpointWriter& writer) {
    std::vector<float> values = make();
    if (values.size() != count) fail("internal error: tensor '", name, "' produced ", values.size(), " values, expected ", count);
    write_floats(writer, name, dtype, values);
  };
  return g;
}

std::vector<int64_t> parse_layer_list(const std::string& text, int64_t num_layers, const std::string& flag) {
  std::set<int64_t> layers;
  if (text.empty() || text == "all") {
    for (int64_t l = 0; l < num_layers; ++l) layers.insert(l);
    return {layers.begin(), layers.end()};
  }
  auto number = [&](const std::string& s) -> int64_t {
    try {
      size_t used = 0;
      int64_t v = std::stoll(s, &used);
      if (used == s.size()) return v;
    } catch (const std::exception&) {
    }
    fail(flag, ": '", s, "' is not a layer index");
  };
  for (const std::string& part : split(text, ',')) {
    auto dash = part.find('-');
    int64_t lo = number(dash == std::string::npos ? part : part.substr(0, dash));
    int64_t hi = dash == std::string::npos ? lo : number(part.substr(dash + 1));
    if (lo < 0 || hi >= num_layers || lo > hi)
      fail(flag, ": layer range '", part, "' is outside [0, ", num_layers - 1, "]");
    for (int64_t l = lo; l <= hi; ++l) layers.insert(l);
  }
  return {layers.begin(), layers.end()};
}

void mean_std(const std::vector<float>& values, double& mean, double& std) {
  double sum = 0, sq = 0;
  for (float v : values) sum += v;
  mean = values.empty() ? 0.0 : sum / static_cast<double>(values.size());
  for (float v : values) sq += (v - mean) * (v - mean);
  std = values.empty() ? 0.0 : std::sqrt(sq / static_cast<double>(values.size()));
}

DType float_dtype_of(const CheckpointStore& store, const std::string& name) {
  DType d = store.tensor(name).info->dtype;
  return d == DType::F32 || d == DType::F16 || d == DType::BF16 ? d : DType::BF16;
}

}  // namespace moeforge::surgery
