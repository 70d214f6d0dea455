// Random initialisation: merged config -> ModelSpec -> every expected tensor, streamed through
// CheckpointWriter with values from a per-tensor seeded normal sampler.
#include "init/random_init.h"

#include <cstring>
#include <fstream>
#include <sstream>

#include "arch/expected_tensors.h"
#include "arch/family_adapter.h"
#include "arch/remote_code.h"
#include "common/error.h"
#include "data/hash.h"
#include "init/normal_sampler.h"
#include "io/checkpoint_writer.h"
#include "tokenizer/tokenizer.h"

namespace moeforge::init {
namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

enum class Fill { Normal, Ones, Zeros };

Fill fill_for(TensorRole role) {
  switch (role) {
    case TensorRole::FinalNorm:
    case TensorRole::AttnNorm:
    case TensorRole::FfnNorm:
    case TensorRole::QNorm:
    case TensorRole::KNorm:
    case TensorRole::QANorm:
    case TensorRole::KvANorm:
    case TensorRole::SharedScale:
      return Fill::Ones;
    case TensorRole::FinalNormBias:
    case TensorRole::AttnNormBias:
    case TensorRole::FfnNormBias:
    case TensorRole::QBias:
    case TensorRole::KBias:
    case TensorRole::VBias:
    case TensorRole::OBias:
    case TensorRole::Sinks:
    case TensorRole::MlpGateBias:
    case TensorRole::MlpUpBias:
    case TensorRole::MlpDownBias:
    case TensorRole::RouterBias:
    case TensorRole::ScoreCorrectionBias:
    case TensorRole::ExpertsGateUpBias:
    case TensorRole::ExpertsDownBias:
      return Fill::Zeros;
    default:
      return Fill::Normal;
  }
}

std::string dtype_json_name(DType dtype) { return dtype == DType::BF16 ? "bfloat16" : "float32"; }

}  // namespace

Json parse_config_argument(const std::string& value) {
  std::string text = value;
  std::string label = "--config";
  size_t first = value.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return Json::object();
  if (value[first] != '{') {
    std::ifstream in(value);
    if (!in) fail("--config: cannot open '", value, "' (give a JSON file or inline JSON starting with '{')");
    std::ostringstream buffer;
    buffer << in.rdbuf();
    text = buffer.str();
    label = value;
  }
  Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) fail(label, ": not a JSON object");
  return j;
}

Json init_config(const InitOptions& options) {
  std::string family = options.family;
  if (options.config.contains("model_type") && options.config["model_type"].is_string()) {
    std::string given = options.config["model_type"].get<std::string>();
    if (!family.empty() && family != given)
      fail("init: --family ", family, " but the config says model_type '", given, "'; drop one of them");
    family = given;
  }
  if (family.empty()) fail("init: give --family (or \"model_type\" in --config)");
  Json config = default_config(family);
  if (!options.tokenizer.empty()) {
    tokenizer::Tokenizer tok = tokenizer::Tokenizer::load(options.tokenizer);
    config["vocab_size"] = tok.vocab_size();
    auto set_id = [&](const char* key, std::optional<int32_t> id) {
      if (id) config[key] = *id;
      else config.erase(key);
    };
    set_id("bos_token_id", tok.bos_id());
    set_id("eos_token_id", tok.eos_id());
    set_id("pad_token_id", tok.pad_id());
  }
  config.merge_patch(options.config);
  config["model_type"] = family;
  if (options.dtype != DType::F32 && options.dtype != DType::BF16) fail("init: --dtype must be fp32 or bf16");
  config["dtype"] = dtype_json_name(options.dtype);
  if (config.contains("quantization_config"))
    fail("init: writes unquantised weights; remove quantization_config from --config");
  ModelSpec spec = spec_from_config(config, nullptr, "init --config");  // validates
  (void)spec;
  return config;
}

InitResult init_model(const InitOptions& options) {
  if (options.out.empty()) fail("init: give --out DIR");
  if (!(options.std >= 0.0)) fail("init: --std must be >= 0");
  InitResult result;
  result.config = init_config(options);
  ModelSpec spec = spec_from_config(result.config, nullptr, (options.out / "config.json").string());
  std::vector<ExpectedTensor> tensors = expected_tensors(spec);
  std::vector<TensorDecl> decls;
  for (const ExpectedTensor& t : tensors) {
    DType dtype = options.dtype;
    bool allowed = false;
    for (DType d : t.dtypes) allowed = allowed || d == dtype;
    if (!allowed && !t.dtypes.empty()) dtype = t.dtypes.front();
    decls.push_back({t.name, dtype, t.shape});
    result.parameters += t.logical_params;
    result.bytes += decls.back().num_bytes();
  }
  WriterOptions wo;
  wo.overwrite = options.overwrite;
  CheckpointWriter writer(options.out, decls, wo);
  for (size_t k = 0; k < tensors.size(); ++k) {
    const TensorDecl& decl = decls[k];
    Fill fill = fill_for(tensors[k].role);
    NormalSampler sampler(data::Hasher(options.seed).field(decl.name).digest());
    const size_t element = dtype_size(decl.dtype);
    uint64_t remaining = decl.num_bytes() / element;
    writer.write_streamed(decl.name, [&](uint8_t* buffer, size_t capacity) -> size_t {
      size_t count = static_cast<size_t>(std::min<uint64_t>(remaining, capacity / element));
      for (size_t i = 0; i < count; ++i) {
        float v = fill == Fill::Ones ? 1.0f : fill == Fill::Zeros ? 0.0f : static_cast<float>(options.std * sampler.next());
        if (decl.dtype == DType::BF16) {
          uint16_t bits = float_to_bf16(v);
          std::memcpy(buffer + 2 * i, &bits, 2);
        } else {
          std::memcpy(buffer + 4 * i, &v, 4);
        }
      }
      remaining -= count;
      return count * element;
    });
  }
  // A family or extension transformers cannot express (gpt_neo_moe) loads through moeforge's remote code.
  for (const auto& [name, text] : apply_remote_code(result.config, true)) writer.add_file(name, text);
  writer.add_file("config.json", result.config.dump(2) + "\n");
  Json generation = Json::object();
  for (const char* key : {"bos_token_id", "eos_token_id", "pad_token_id"})
    if (result.config.contains(key) && !result.config[key].is_null()) generation[key] = result.config[key];
  writer.add_file("generation_config.json", generation.dump(2) + "\n");
  if (!options.tokenizer.empty()) {
    fs::path dir = fs::is_directory(options.tokenizer) ? options.tokenizer : options.tokenizer.parent_path();
    for (const char* name : {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"})
      if (fs::is_regular_file(dir / name)) writer.copy_file(name, dir / name);
  }
  result.path = writer.commit();
  result.tensors = tensors.size();
  return result;
}

}  // namespace moeforge::init
