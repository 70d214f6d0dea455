// Teacher cache manifest and record codec (layout in teacher_cache_format.h).
#include "train/teacher_cache_format.h"

#include <cmath>
#include <cstdio>
#include <cstring>

#include "common/error.h"
#include "io/json_fields.h"

namespace moeforge::train {

int bits_for(int64_t n) {
  int b = 1;
  while ((int64_t{1} << b) < n) ++b;
  return b;
}

int CacheManifest::id_bits() const { return bits_for(vocab); }
int CacheManifest::router_id_bits() const { return bits_for(std::max<int64_t>(num_experts, 2)); }

int64_t CacheManifest::router_bytes() const {
  const int64_t layer = router_top_k == 0 ? 0 : (router_top_k * router_id_bits() + 7) / 8 + 2 * router_top_k + 2;
  return layer * static_cast<int64_t>(moe_layers.size());
}

int64_t CacheManifest::bf16_token_bytes() const { return (top_k * id_bits() + 7) / 8 + 2 * top_k + 2; }

int64_t CacheManifest::token_bytes() const {
  if (codec == CacheCodec::Bf16) return bf16_token_bytes() + router_bytes();
  // Worst case of the compact stream: an id gap costs at most id_bits + 1 bits at k_id = id_bits, a
  // q <= 255 at most 10 bits at k_p = 7; plus the 24 bits of orders and tail.
  return (top_k * (id_bits() + 1 + 10) + 24 + 7) / 8 + router_bytes();
}

CacheCodec parse_cache_codec(const std::string& name, const std::string& where) {
  if (name == "compact") return CacheCodec::Compact;
  if (name == "bf16") return CacheCodec::Bf16;
  fail(where, ": unknown codec '", name, "' (compact or bf16)");
}

const char* cache_codec_name(CacheCodec c) { return c == CacheCodec::Bf16 ? "bf16" : "compact"; }

namespace {
constexpr char kIndexMagic[8] = {'M', 'F', 'T', 'C', 'I', 'D', 'X', '1'};
}

BlockIndex read_block_index(const CacheManifest& m, int64_t file, const uint8_t* data, uint64_t size, std::string* why) {
  const auto n = static_cast<uint64_t>(m.blocks_in_file(file));
  BlockIndex index;
  auto& offsets = index.offsets;
  offsets.resize(n + 1);
  if (m.codec == CacheCodec::Bf16) {
    const auto block = static_cast<uint64_t>(m.block_bytes());
    if (size != n * block) {
      *why = std::to_string(size) + " bytes, the manifest implies " + std::to_string(n * block);
      return {};
    }
    for (uint64_t i = 0; i <= n; ++i) offsets[i] = i * block;
    return index;
  }
  const uint64_t index_bytes = 8 * (2 * n + 1) + 16;
  if (size < index_bytes || std::memcmp(data + size - 8, kIndexMagic, 8) != 0) {
    *why = "no block index at its end (an interrupted or damaged file)";
    return {};
  }
  uint64_t count;
  std::memcpy(&count, data + size - 16, 8);
  if (count != n) {
    *why = "its index lists " + std::to_string(count) + " blocks, the manifest " + std::to_string(n);
    return {};
  }
  std::memcpy(offsets.data(), data + size - index_bytes, 8 * (n + 1));
  index.checksums.resize(n);
  std::memcpy(index.checksums.data(), data + size - index_bytes + 8 * (n + 1), 8 * n);
  const uint64_t min_block = 8 + static_cast<uint64_t>(m.block_size * m.router_bytes());
  bool ok = offsets[0] == 0 && offsets[n] == size - index_bytes;
  for (uint64_t i = 0; i < n && ok; ++i) ok = offsets[i + 1] >= offsets[i] + min_block && offsets[i + 1] <= size - index_bytes;
  if (!ok) {
    *why = "its block index is damaged";
    return {};
  }
  return index;
}

std::vector<uint8_t> block_index_bytes(const BlockIndex& index) {
  const uint64_t n = index.checksums.size();
  std::vector<uint8_t> out(8 * (2 * n + 1) + 16);
  std::memcpy(out.data(), index.offsets.data(), 8 * (n + 1));
  std::memcpy(out.data() + 8 * (n + 1), index.checksums.data(), 8 * n);
  std::memcpy(out.data() + 8 * (2 * n + 1), &n, 8);
  std::memcpy(out.data() + 8 * (2 * n + 1) + 8, kIndexMagic, 8);
  return out;
}

int64_t CacheManifest::blocks_in_file(int64_t file) const {
  return std::min(blocks_per_file, train_blocks - file * blocks_per_file);
}

std::string CacheManifest::file_name(int64_t file) const {
  char name[32];
  std::snprintf(name, sizeof name, "blocks-%06lld.bin", static_cast<long long>(file));
  return name;
}

void pack_bits(const int64_t* values, int64_t count, int bits, uint8_t* out) {
  std::memset(out, 0, static_cast<size_t>((count * bits + 7) / 8));
  int64_t pos = 0;
  for (int64_t i = 0; i < count; ++i) {
    const uint64_t v = static_cast<uint64_t>(values[i]);
    for (int b = 0; b < bits; ++b, ++pos)
      if ((v >> b) & 1u) out[pos >> 3] |= static_cast<uint8_t>(1u << (pos & 7));
  }
}

void unpack_bits(const uint8_t* in, int64_t count, int bits, int64_t* values) {
  int64_t pos = 0;
  for (int64_t i = 0; i < count; ++i) {
    uint64_t v = 0;
    for (int b = 0; b < bits; ++b, ++pos) v |= static_cast<uint64_t>((in[pos >> 3] >> (pos & 7)) & 1u) << b;
    values[i] = static_cast<int64_t>(v);
  }
}

uint16_t float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if (std::isnan(f)) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

float bf16_to_float(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

nlohmann::json CacheManifest::to_json() const {
  return {{"format", "moeforge-teacher-cache"},
          {"version", kVersion},
          {"teacher", {{"path", teacher_path}, {"fingerprint", teacher_fingerprint}, {"vocab_size", teacher_vocab}}},
          {"tokenizer", {{"xxh64", tokenizer_xxh64}}},
          {"data",
           {{"spec", data_spec},
            {"fingerprint", data_fingerprint},
            {"block_size", block_size},
            {"train_blocks", train_blocks},
            {"seed", seed},
            {"validation_fraction", validation_fraction},
            {"packing", packing}}},
          {"vocab", vocab},
          {"top_k", top_k},
          {"router_top_k", router_top_k},
          {"num_experts", num_experts},
          {"moe_layers", moe_layers},
          {"codec", codec_json()},
          {"layout", layout_json()}};
}

nlohmann::json CacheManifest::codec_json() const {
  nlohmann::json c = {{"name", cache_codec_name(codec)},
                      {"router_id_bits", router_id_bits()},
                      {"router_logits", "bf16 raw logits + bf16 logsumexp of the rest"}};
  if (codec == CacheCodec::Bf16) {
    c["ids"] = "bitpacked-lsb";
    c["id_bits"] = id_bits();
    c["logp"] = "bf16";
    c["tail"] = "bf16 log(1 - sum p_K)";
  } else {
    c["ids"] = "ascending, exp-Golomb gaps (5-bit order per token)";
    c["logp"] = "q = round(255 sqrt(p)), exp-Golomb (3-bit order per token), same order as the ids";
    c["tail"] = "bf16 log(1 - sum p_K)";
  }
  return c;
}

nlohmann::json CacheManifest::layout_json() const {
  nlohmann::json l = {{"block_header", "xxh64 of the block's int32 ids, 8 bytes LE"}, {"blocks_per_file", blocks_per_file},
                      {"files", num_files()}, {"router_bytes", router_bytes()}};
  if (codec == CacheCodec::Bf16)
    l["token_bytes"] = token_bytes();
  else
    l["index"] = "uint64 offsets of the blocks and their end, uint64 xxh64 of each block, uint64 count, \"MFTCIDX1\"";
  return l;
}

CacheManifest CacheManifest::from_json(const nlohmann::json& j, const std::string& where) {
  JsonFields f(j, where, "", "manifest");
  if (f.string("format", "") != "moeforge-teacher-cache") f.bad("format", "not a moeforge teacher cache");
  const int64_t version = f.integer("version", 0);
  f.check(version == 1 || version == kVersion, "version",
          "is " + std::to_string(version) + "; this moeforge reads versions 1 to " + std::to_string(kVersion));
  CacheManifest m;
  {
    JsonFields t = f.object("teacher");
    m.teacher_path = t.string("path", "");
    m.teacher_fingerprint = t.string("fingerprint", "");
    m.teacher_vocab = t.integer("vocab_size", 0, 1);
    t.finish();
  }
  {
    JsonFields t = f.object("tokenizer");
    m.tokenizer_xxh64 = t.string("xxh64", "");
    t.finish();
  }
  {
    JsonFields d = f.object("data");
    m.data_spec = d.string("spec", "");
    m.data_fingerprint = d.string("fingerprint", "");
    m.block_size = d.integer("block_size", 0, 2);
    m.train_blocks = d.integer("train_blocks", 0, 0);
    m.seed = d.unsigned_integer("seed", 0);
    m.validation_fraction = d.number("validation_fraction", 0.0);
    m.packing = d.string("packing", "concat");
    d.finish();
  }
  m.vocab = f.integer("vocab", 0, 2);
  m.top_k = f.integer("top_k", 0, 1);
  f.check(m.top_k <= m.vocab, "top_k", "exceeds vocab");
  m.router_top_k = f.integer("router_top_k", 0, 0);
  m.num_experts = f.integer("num_experts", 0, 0);
  f.check(m.router_top_k <= m.num_experts, "router_top_k", "exceeds num_experts");
  if (f.has("moe_layers")) {
    const auto& layers = f.raw("moe_layers");
    if (!layers.is_array()) f.bad("moe_layers", "must be a list of layer indices");
    for (const auto& l : layers) {
      if (!l.is_number_integer() || l.get<int64_t>() < 0) f.bad("moe_layers", "must be a list of layer indices");
      m.moe_layers.push_back(l.get<int64_t>());
    }
  }
  {
    // Only the name matters (version 1: bf16); the rest describes it for readers of the file.
    std::string name = "bf16";
    const bool has_codec = f.has("codec");
    if (version > 1) {
      if (!has_codec) f.bad("codec", "is missing");
      const auto& c = f.raw("codec");
      name = c.is_object() && c.contains("name") && c["name"].is_string() ? c["name"].get<std::string>() : "";
    }
    if (name.empty()) f.bad("codec", "needs a \"name\" (compact or bf16)");
    m.codec = parse_cache_codec(name, where + ": codec.name");
  }
  {
    JsonFields l = f.object("layout");
    m.blocks_per_file = l.integer("blocks_per_file", 0, 1);
    if (m.codec == CacheCodec::Bf16) {
      const int64_t tb = l.integer("token_bytes", 0, 1);
      l.check(tb == m.token_bytes(), "token_bytes", "is " + std::to_string(tb) + " but the fields give " + std::to_string(m.token_bytes()));
    } else {
      l.string("index", "");
    }
    if (l.has("router_bytes")) {
      const int64_t rb = l.integer("router_bytes", 0, 0);
      l.check(rb == m.router_bytes(), "router_bytes", "is " + std::to_string(rb) + " but the fields give " + std::to_string(m.router_bytes()));
    }
    l.integer("files", 0, 0);
    l.string("block_header", "");
    l.finish();
  }
  f.finish();
  return m;
}

std::vector<std::string> manifest_differences(const CacheManifest& c, const CacheManifest& r) {
  std::vector<std::string> out;
  auto cmp = [&](const char* field, const auto& have, const auto& want) {
    if (have != want) out.push_back(std::string(field) + ": the cache has " + nlohmann::json(have).dump() + ", this run " +
                                    nlohmann::json(want).dump());
  };
  cmp("tokenizer.xxh64", c.tokenizer_xxh64, r.tokenizer_xxh64);
  cmp("data.block_size", c.block_size, r.block_size);
  cmp("data.seed", c.seed, r.seed);
  cmp("data.validation_fraction", c.validation_fraction, r.validation_fraction);
  cmp("data.packing", c.packing, r.packing);
  cmp("data.train_blocks", c.train_blocks, r.train_blocks);
  cmp("data.fingerprint", c.data_fingerprint, r.data_fingerprint);
  return out;
}

}  // namespace moeforge::train
