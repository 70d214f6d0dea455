// Writing, reading and inspecting teacher caches (teacher_cache.h; layout: teacher_cache_format.h).
#include "train/teacher_cache.h"

#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "arch/family_adapter.h"
#include "common/error.h"
#include "common/progress.h"
#include "io/atomic_file.h"
#include "io/checkpoint_store.h"
#include "io/checkpoint_verify.h"
#include "io/mapped_file.h"
#include "model/device.h"
#include "model/transformer.h"
#include "tokenizer/tokenizer.h"
#include "train/distill_kernel.h"
#include "train/teacher.h"
#include "train/teacher_cache_codec.h"

namespace moeforge::train {

namespace fs = std::filesystem;

namespace {

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

uint64_t block_ids_hash(const int32_t* ids, int64_t n) { return xxh64(ids, static_cast<size_t>(n) * sizeof(int32_t)); }

void put_bf16(float f, uint8_t*& out) {
  const uint16_t b = float_to_bf16(f);
  std::memcpy(out, &b, 2);
  out += 2;
}

float get_bf16(const uint8_t*& p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  p += 2;
  return bf16_to_float(v);
}

// One token's router records (per MoE layer: top-R ids, their logits, the rest's logsumexp).
void encode_router(const CacheManifest& m, const std::vector<const int64_t*>& r_ids, const std::vector<const float*>& r_logits,
                   const std::vector<float>& r_tail, uint8_t* out) {
  const int64_t R = m.router_top_k;
  for (size_t l = 0; l < r_ids.size(); ++l) {
    pack_bits(r_ids[l], R, m.router_id_bits(), out);
    out += (R * m.router_id_bits() + 7) / 8;
    for (int64_t k = 0; k < R; ++k) put_bf16(r_logits[l][k], out);
    put_bf16(r_tail[l], out);
  }
}

// One token's bf16-codec token part: top-K ids bit-packed, their log-probabilities, the tail.
void encode_bf16_tokens(const CacheManifest& m, const int64_t* ids, const float* logp, float tail, uint8_t* out) {
  pack_bits(ids, m.top_k, m.id_bits(), out);
  out += (m.top_k * m.id_bits() + 7) / 8;
  for (int64_t k = 0; k < m.top_k; ++k) put_bf16(logp[k], out);
  put_bf16(tail, out);
}

// Top-k (sorted, largest first) of each row and the logsumexp of the other entries.
void top_and_rest(const torch::Tensor& x_NV, int64_t k, torch::Tensor& values, torch::Tensor& ids, torch::Tensor& rest) {
  auto top = x_NV.topk(k, 1);
  values = std::get<0>(top);
  ids = std::get<1>(top);
  rest = torch::logsumexp(x_NV.scatter(1, ids, -std::numeric_limits<float>::infinity()), 1);
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) b /= 1000, ++u;
  std::ostringstream s;
  s.precision(u == 0 ? 0 : 3);
  s << b << " " << units[u];
  return s.str();
}

// The block index of a complete blocks file, empty when it is absent or incomplete.
BlockIndex file_index(const CacheManifest& m, int64_t file, const fs::path& path, std::string* why) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) {
    *why = "missing";
    return {};
  }
  if (size == 0) {
    *why = "empty";
    return {};
  }
  MappedFile f(path);
  return read_block_index(m, file, f.data(), f.size(), why);
}

CacheManifest read_manifest(const fs::path& dir) {
  const fs::path path = dir / "manifest.json";
  if (!fs::exists(path)) fail(dir.string(), ": not a teacher cache (no manifest.json)");
  return CacheManifest::from_json(read_json_file(path), path.string());
}

}  // namespace

std::string teacher_fingerprint(const fs::path& model_dir) {
  auto store = CheckpointStore::open(model_dir);
  Xxh64 h;
  const std::string config = store->read_json("config.json").dump();
  h.update(config.data(), config.size());
  for (const auto& shard : store->shard_files()) {
    MappedFile f(store->directory() / shard);
    uint64_t header = 0;
    if (f.size() >= 8) std::memcpy(&header, f.data(), 8);
    const uint64_t size = f.size();
    h.update(shard.data(), shard.size());
    h.update(&size, 8);
    h.update(f.data(), static_cast<size_t>(std::min<uint64_t>(f.size(), 8 + header)));
  }
  return hex(h.digest());
}

std::string tokenizer_hash(const fs::path& tokenizer_dir) {
  const fs::path file = fs::is_directory(tokenizer_dir) ? tokenizer_dir / "tokenizer.json" : tokenizer_dir;
  if (!fs::exists(file)) fail(tokenizer_dir.string(), ": no tokenizer.json");
  MappedFile f(file);
  return hex(xxh64(f.data(), f.size()));
}

std::string data_fingerprint(const data::Dataset& dataset) {
  const size_t n = dataset.num_blocks(data::Split::Train);
  const int64_t T = dataset.block_size();
  Xxh64 h;
  const uint64_t count = n;
  h.update(&count, 8);
  std::vector<int32_t> ids(static_cast<size_t>(T));
  std::vector<uint8_t> mask(static_cast<size_t>(T));
  const size_t stride = std::max<size_t>(1, n / 64);  // 64 blocks spread over the set, plus the last
  for (size_t i = 0; i < n; i += stride) {
    dataset.fill_block(data::Split::Train, i, ids.data(), mask.data());
    h.update(ids.data(), ids.size() * 4);
    h.update(mask.data(), mask.size());
  }
  if (n > 0) {
    dataset.fill_block(data::Split::Train, n - 1, ids.data(), mask.data());
    h.update(ids.data(), ids.size() * 4);
  }
  return hex(h.digest());
}

CacheManifest run_manifest(const data::Dataset& dataset, const data::DataOptions& o, const fs::path& tokenizer_dir,
                           const std::string& data_spec, const std::string& packing) {
  CacheManifest m;
  m.tokenizer_xxh64 = tokenizer_hash(tokenizer_dir);
  m.data_spec = data_spec;
  m.data_fingerprint = data_fingerprint(dataset);
  m.block_size = o.block_size;
  m.train_blocks = static_cast<int64_t>(dataset.num_blocks(data::Split::Train));
  m.seed = o.seed;
  m.validation_fraction = o.validation_fraction;
  m.packing = packing;
  return m;
}

TeacherCacheReport write_teacher_cache(const TeacherCacheOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  if (o.block_size < 2) fail("teacher-cache: --seq-len must be >= 2");
  if (o.top_k < 1) fail("teacher-cache: --top-k must be >= 1");
  if (o.router_top_k < 0) fail("teacher-cache: --router-top-k must be >= 0");
  if (o.shard_count < 1 || o.shard_index < 0 || o.shard_index >= o.shard_count)
    fail("teacher-cache: --shard ", o.shard_index, "/", o.shard_count, ": want i/n with 0 <= i < n");
  Teacher::check_directory(o.teacher_dir);
  auto store = CheckpointStore::open(o.teacher_dir);
  const ModelSpec spec = load_model_spec(*store);
  check_sequence_length(spec, o.block_size, "teacher-cache: --seq-len", o.allow_long_seq);
  const fs::path tok_dir = o.tokenizer_dir.empty() ? o.teacher_dir : o.tokenizer_dir;
  const int64_t true_vocab = static_cast<int64_t>(Tokenizer::load(tok_dir).vocab_size());
  if (true_vocab > spec.vocab_size)
    fail("teacher-cache: ", tok_dir.string(), ": the tokenizer has ", true_vocab, " ids, the teacher's vocabulary only ", spec.vocab_size);
  if (o.top_k > true_vocab) fail("teacher-cache: --top-k ", o.top_k, " exceeds the vocabulary (", true_vocab, ")");
  if (o.router_top_k > 0 && !spec.has_moe()) fail("teacher-cache: --router-top-k: ", o.teacher_dir.string(), " has no MoE layers");
  if (o.router_top_k > spec.moe.num_experts)
    fail("teacher-cache: --router-top-k ", o.router_top_k, " exceeds the teacher's ", spec.moe.num_experts, " experts");

  data::DataOptions dopt;
  dopt.block_size = o.block_size;
  dopt.validation_fraction = o.validation_fraction;
  dopt.seed = o.seed;
  dopt.packing = data::parse_pack_mode(o.packing);
  dopt.max_bad_fraction = o.max_bad_fraction;
  if (!o.data_cache_dir.empty()) dopt.cache_dir = o.data_cache_dir;
  auto dataset = data::Dataset::open(o.data_spec, tok_dir, dopt);
  CacheManifest m = run_manifest(dataset, dopt, tok_dir, o.data_spec, o.packing);
  if (m.train_blocks == 0) fail(o.data_spec, ": no training blocks of ", o.block_size, " tokens");
  m.teacher_path = fs::absolute(o.teacher_dir).string();
  m.teacher_fingerprint = teacher_fingerprint(o.teacher_dir);
  m.teacher_vocab = spec.vocab_size;
  m.vocab = true_vocab;
  m.top_k = o.top_k;
  m.router_top_k = o.router_top_k;
  m.num_experts = spec.moe.num_experts;
  for (int64_t l = 0; l < spec.num_layers; ++l)
    if (spec.is_moe[l]) m.moe_layers.push_back(l);
  m.codec = o.codec;
  m.blocks_per_file = std::max<int64_t>(1, o.file_bytes / m.block_bytes());

  // The manifest is written once; a later run (another shard, a resume) must ask for the same cache.
  fs::create_directories(o.out_dir);
  const fs::path manifest_path = o.out_dir / "manifest.json";
  if (fs::exists(manifest_path)) {
    const CacheManifest have = read_manifest(o.out_dir);
    const nlohmann::json a = have.to_json(), b = m.to_json();
    if (a != b) {
      std::string field;
      for (auto it = b.begin(); it != b.end(); ++it)
        if (!a.contains(it.key()) || a[it.key()] != it.value()) field = it.key();
      fail(manifest_path.string(), ": this run would write another cache (", field, " differs: ", a.value(field, nlohmann::json()).dump(),
           " vs ", b[field].dump(), "); choose another --out");
    }
  } else {
    write_file_atomic(manifest_path, m.to_json().dump(2) + "\n");
  }

  TeacherCacheReport report;
  report.manifest = m;
  model::LoadOptions load;
  load.device = model::parse_device(o.device, "teacher-cache: --device");
  load.dtype = stored_precision(*store);
  load.pack_mxfp4 = true;  // forward only: MXFP4 experts stay packed
  load.allow_streaming = true;  // and a teacher over the budget streams its layers
  load.local_ranks = o.local_ranks;
  std::unique_ptr<model::Transformer> teacher;
  const int64_t T = m.block_size, K = m.top_k, R = m.router_top_k, L = static_cast<int64_t>(m.moe_layers.size());
  for (int64_t f = 0; f < m.num_files(); ++f) {
    const fs::path path = o.out_dir / m.file_name(f);
    const int64_t nblocks = m.blocks_in_file(f);
    std::string why;
    if (!file_index(m, f, path, &why).empty()) {
      ++report.files_present;
      continue;
    }
    if (f % o.shard_count != o.shard_index) {
      ++report.files_missing;
      continue;
    }
    if (!teacher) teacher = model::Transformer::load(o.teacher_dir, load);
    const fs::path partial = o.out_dir / ("." + m.file_name(f) + ".partial");
    BlockIndex index;
    index.offsets = {0};
    {
      std::ofstream out(partial, std::ios::binary | std::ios::trunc);
      if (!out) fail(partial.string(), ": cannot write");
      const int64_t first = f * m.blocks_per_file;
      Progress progress("teacher-cache " + m.file_name(f), nblocks, "blocks", o.progress);
      for (int64_t b0 = 0; b0 < nblocks; b0 += o.batch_size) {
        const int64_t B = std::min(o.batch_size, nblocks - b0);
        std::vector<int32_t> ids(static_cast<size_t>(B * T));
        std::vector<uint8_t> mask(static_cast<size_t>(B * T));
        for (int64_t i = 0; i < B; ++i)
          dataset.fill_block(data::Split::Train, static_cast<size_t>(first + b0 + i), ids.data() + i * T, mask.data() + i * T);
        torch::NoGradGuard no_grad;
        auto ids_t = torch::from_blob(ids.data(), {B, T}, torch::kInt32).to(torch::kInt64).to(teacher->device());
        model::ForwardOptions fo;
        fo.hidden_only = true;
        auto outp = teacher->forward(ids_t, fo);
        auto hidden = outp.hidden.reshape({B * T, -1});
        // Token top-K in chunks (no [B*T, vocab] buffer beyond one chunk).
        std::vector<torch::Tensor> tv, ti, tr;
        const int64_t chunk = std::max<int64_t>(16, (int64_t{1} << 25) / spec.vocab_size);
        const auto& head = teacher->weights().lm_head;
        // fp32 on CPU: logits into one reused buffer, topk on them, the log-normaliser and the tail in
        // one fused pass (distill_kernel.h); elsewhere the same with torch ops.
        const bool fused = teacher->device().is_cpu();
        torch::Tensor buffer = fused ? torch::empty({chunk, head.size(0)}, torch::kFloat32) : torch::Tensor();
        for (int64_t r0 = 0; r0 < B * T; r0 += chunk) {
          const int64_t n = std::min(chunk, B * T - r0);
          auto x = hidden.narrow(0, r0, n);
          if (!fused) {
            auto logits = torch::linear(x, head).to(torch::kFloat32).narrow(1, 0, m.vocab);
            torch::Tensor v, i, rest;
            top_and_rest(torch::log_softmax(logits, 1), K, v, i, rest);
            tv.push_back(v.cpu());
            ti.push_back(i.cpu());
            tr.push_back(rest.cpu());
            continue;
          }
          auto z = buffer.narrow(0, 0, n);
          if (head.scalar_type() == torch::kFloat32 && x.scalar_type() == torch::kFloat32)
            torch::mm_out(z, x, head.t());
          else
            z.copy_(torch::mm(x, head.t()));
          auto zv = z.narrow(1, 0, m.vocab);  // the tokenizer's ids (rows keep the buffer's stride)
          auto top = zv.topk(K, 1);
          auto values = std::get<0>(top).contiguous(), idx = std::get<1>(top).contiguous();
          auto logp = torch::empty({n, K}, torch::kFloat32), rest = torch::empty({n}, torch::kFloat32);
          fused_top_logp_and_tail(z.data_ptr<float>(), n, m.vocab, z.stride(0), idx.data_ptr<int64_t>(), values.data_ptr<float>(), K,
                                  logp.data_ptr<float>(), rest.data_ptr<float>());
          tv.push_back(logp);
          ti.push_back(idx);
          tr.push_back(rest);
        }
        auto top_v = torch::cat(tv).contiguous(), top_i = torch::cat(ti).contiguous(), tail = torch::cat(tr).contiguous();
        std::vector<torch::Tensor> rv(L), ri(L), rt(L);
        for (int64_t l = 0; l < L && R > 0; ++l) {
          top_and_rest(outp.routing[l].logits.to(torch::kFloat32), R, rv[l], ri[l], rt[l]);
          rv[l] = rv[l].cpu().contiguous(), ri[l] = ri[l].cpu().contiguous(), rt[l] = rt[l].cpu().contiguous();
        }
        for (int64_t i = 0; i < B; ++i) {
          const uint64_t h = block_ids_hash(ids.data() + i * T, T);
          std::vector<uint8_t> block(8);
          std::memcpy(block.data(), &h, 8);
          const auto router_at = [&](int64_t row, uint8_t* out) {
            if (R == 0) return;
            std::vector<const int64_t*> r_ids(static_cast<size_t>(L));
            std::vector<const float*> r_logits(r_ids.size());
            std::vector<float> r_tail(r_ids.size());
            for (size_t l = 0; l < r_ids.size(); ++l) {
              r_ids[l] = ri[l].data_ptr<int64_t>() + row * R;
              r_logits[l] = rv[l].data_ptr<float>() + row * R;
              r_tail[l] = rt[l].data_ptr<float>()[row];
            }
            encode_router(m, r_ids, r_logits, r_tail, out);
          };
          const int64_t* tid = top_i.data_ptr<int64_t>();
          const float* tlp = top_v.data_ptr<float>();
          const float* ttail = tail.data_ptr<float>();
          if (m.codec == CacheCodec::Bf16) {
            block.resize(static_cast<size_t>(m.block_bytes()));
            for (int64_t t = 0; t < T; ++t) {
              uint8_t* rec = block.data() + 8 + t * m.token_bytes();
              const int64_t row = i * T + t;
              encode_bf16_tokens(m, tid + row * K, tlp + row * K, ttail[row], rec);
              router_at(row, rec + m.bf16_token_bytes());
            }
          } else {
            block.resize(static_cast<size_t>(8 + T * m.router_bytes()));
            for (int64_t t = 0; t < T; ++t) router_at(i * T + t, block.data() + 8 + t * m.router_bytes());
            BitWriter bits;
            for (int64_t t = 0; t < T; ++t) {
              const int64_t row = i * T + t;
              encode_compact_token(tid + row * K, tlp + row * K, ttail[row], K, m.id_bits(), bits);
            }
            bits.align();
            block.insert(block.end(), bits.bytes().begin(), bits.bytes().end());
          }
          out.write(reinterpret_cast<const char*>(block.data()), static_cast<std::streamsize>(block.size()));
          index.offsets.push_back(index.offsets.back() + block.size());
          index.checksums.push_back(xxh64(block.data(), block.size()));
        }
        report.tokens += B * T;
        progress.update(b0 + B);
      }
      if (m.codec == CacheCodec::Compact) {
        const auto bytes = block_index_bytes(index);
        out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
      }
      out.flush();
      if (!out) fail(partial.string(), ": write failed (disk full?)");
    }
    fs::rename(partial, path);  // complete files only ever appear under their final name
    report.bytes += static_cast<int64_t>(fs::file_size(path));
    ++report.files_written;
  }

  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

TeacherCacheReader::TeacherCacheReader(const fs::path& dir) : dir_(dir), m_(read_manifest(dir)) {
  for (int64_t f = 0; f < m_.num_files(); ++f) {
    const fs::path path = dir / m_.file_name(f);
    if (!fs::exists(path))
      fail(dir.string(), ": incomplete teacher cache: ", m_.file_name(f), " missing (", m_.num_files(),
           " files; run `moeforge teacher-cache` again, with the same arguments, to finish it)");
    files_.push_back(std::make_unique<MappedFile>(path));
    std::string why = "empty";
    auto index = files_.back()->size() == 0 ? BlockIndex{} : read_block_index(m_, f, files_.back()->data(), files_.back()->size(), &why);
    if (index.empty()) fail(path.string(), ": ", why, " (damaged cache)");
    index_.push_back(std::move(index));
  }
}

TeacherCacheReader::~TeacherCacheReader() = default;

TeacherTokens TeacherCacheReader::lookup(const data::Batch& b, bool with_router) const {
  const int64_t B = b.batch_size, T = b.block_size, K = m_.top_k, R = m_.router_top_k, L = static_cast<int64_t>(m_.moe_layers.size());
  if (T != m_.block_size) fail(dir_.string(), ": blocks of ", m_.block_size, " tokens, the batch has ", T);
  auto ids = torch::empty({B * T, K}, torch::kInt64), logp = torch::empty({B * T, K}, torch::kFloat32),
       tail = torch::empty({B * T}, torch::kFloat32);
  const bool router = with_router && R > 0;
  std::vector<torch::Tensor> r_ids, r_logits, r_tail;
  for (int64_t l = 0; l < (router ? L : 0); ++l) {
    r_ids.push_back(torch::empty({B * T, R}, torch::kInt64));
    r_logits.push_back(torch::empty({B * T, R}, torch::kFloat32));
    r_tail.push_back(torch::empty({B * T}, torch::kFloat32));
  }
  const int64_t id_bytes = (K * m_.id_bits() + 7) / 8, rid_bytes = (R * m_.router_id_bits() + 7) / 8;
  // One token's router records at p into `row` (or skipped when not wanted).
  const auto read_router = [&](const uint8_t* p, int64_t row) {
    if (!router) return;
    for (int64_t l = 0; l < L; ++l) {
      unpack_bits(p, R, m_.router_id_bits(), r_ids[l].data_ptr<int64_t>() + row * R);
      p += rid_bytes;
      float* lg = r_logits[l].data_ptr<float>() + row * R;
      for (int64_t k = 0; k < R; ++k) lg[k] = get_bf16(p);
      r_tail[l].data_ptr<float>()[row] = get_bf16(p);
    }
  };
  for (int64_t i = 0; i < B; ++i) {
    const int64_t block = b.block_indices.at(static_cast<size_t>(i));
    if (block < 0 || block >= m_.train_blocks) fail(dir_.string(), ": block ", block, " is outside the cache's ", m_.train_blocks);
    const size_t file = static_cast<size_t>(block / m_.blocks_per_file), in_file = static_cast<size_t>(block % m_.blocks_per_file);
    const uint8_t* p = files_[file]->data() + index_[file].offsets[in_file];
    const uint8_t* end = files_[file]->data() + index_[file].offsets[in_file + 1];
    if (!index_[file].checksums.empty() && xxh64(p, static_cast<size_t>(end - p)) != index_[file].checksums[in_file])
      fail((dir_ / m_.file_name(static_cast<int64_t>(file))).string(), ": block ", block, " is damaged (its checksum differs)");
    uint64_t h;
    std::memcpy(&h, p, 8);
    if (h != block_ids_hash(b.ids.data() + i * T, T))
      fail(dir_.string(), ": training block ", block, " holds other tokens than the cache's (the data changed since it was written)");
    p += 8;
    if (m_.codec == CacheCodec::Bf16) {
      for (int64_t t = 0; t < T; ++t) {
        const int64_t row = i * T + t;
        unpack_bits(p, K, m_.id_bits(), ids.data_ptr<int64_t>() + row * K);
        p += id_bytes;
        float* lp = logp.data_ptr<float>() + row * K;
        for (int64_t k = 0; k < K; ++k) lp[k] = get_bf16(p);
        tail.data_ptr<float>()[row] = get_bf16(p);
        read_router(p, row);
        p += m_.router_bytes();
      }
      continue;
    }
    for (int64_t t = 0; t < T; ++t) read_router(p + t * m_.router_bytes(), i * T + t);
    p += T * m_.router_bytes();
    BitReader bits(p, static_cast<uint64_t>(end - p), (dir_ / m_.file_name(static_cast<int64_t>(file))).string() + ": block " + std::to_string(block));
    for (int64_t t = 0; t < T; ++t) {
      const int64_t row = i * T + t;
      decode_compact_token(bits, K, m_.vocab, ids.data_ptr<int64_t>() + row * K, logp.data_ptr<float>() + row * K,
                           tail.data_ptr<float>() + row);
    }
  }
  TeacherTokens out;
  out.top_ids_NK = ids;
  out.top_logp_NK = logp;
  out.tail_logp_N = tail;
  out.router_ids_NR = std::move(r_ids);
  out.router_logits_NR = std::move(r_logits);
  out.router_tail_N = std::move(r_tail);
  return out;
}

std::string inspect_teacher_cache(const fs::path& dir) {
  const CacheManifest m = read_manifest(dir);
  int64_t present = 0, bytes = 0, present_blocks = 0;
  std::vector<std::string> missing;
  for (int64_t f = 0; f < m.num_files(); ++f) {
    const fs::path p = dir / m.file_name(f);
    std::string why;
    const auto index = file_index(m, f, p, &why);
    if (!index.empty()) {
      ++present;
      present_blocks += m.blocks_in_file(f);
      bytes += static_cast<int64_t>(index.offsets.back());  // the blocks, without the index
    } else {
      missing.push_back(m.file_name(f));
    }
  }
  std::ostringstream s;
  s.precision(4);
  const double tokens = static_cast<double>(present_blocks * m.block_size);
  // Measured over the files present (compact records vary); the block hashes count with the tokens.
  const double router = static_cast<double>(m.router_bytes());
  const double token_part = tokens > 0 ? static_cast<double>(bytes) / tokens - router : static_cast<double>(m.token_bytes()) - router;
  s << "teacher cache " << dir.string() << "\n"
    << "  teacher     " << m.teacher_path << " (fingerprint " << m.teacher_fingerprint << ", vocabulary " << m.teacher_vocab << ")\n"
    << "  tokenizer   xxh64 " << m.tokenizer_xxh64 << "\n"
    << "  data        " << m.data_spec << " (fingerprint " << m.data_fingerprint << ")\n"
    << "              " << m.train_blocks << " training blocks of " << m.block_size << " tokens, seed " << m.seed
    << ", validation_fraction " << m.validation_fraction << ", packing " << m.packing << "\n"
    << "  tokens      top-" << m.top_k << " of " << m.vocab << " ids, codec " << cache_codec_name(m.codec)
    << (m.codec == CacheCodec::Bf16 ? " (bit-packed ids + bf16 log-probs + tail)" : " (exp-Golomb ids + sqrt-quantised probabilities + tail)")
    << ": " << token_part << " B/token" << (tokens > 0 || m.codec == CacheCodec::Bf16 ? "" : " at most") << "\n";
  if (m.router_top_k > 0)
    s << "  router      top-" << m.router_top_k << " of " << m.num_experts << " experts on " << m.moe_layers.size()
      << " MoE layers: " << m.router_bytes() << " B/token\n";
  else
    s << "  router      not stored\n";
  s << "  total       " << token_part + router << " B/token; " << present << "/" << m.num_files() << " files, " << human_bytes(static_cast<double>(bytes))
    << (missing.empty() ? "; complete\n" : "; incomplete, missing " + missing.front() + (missing.size() > 1 ? " and " + std::to_string(missing.size() - 1) + " more" : "") + "\n");
  return s.str();
}

}  // namespace moeforge::train
