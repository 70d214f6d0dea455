// Token cache files: building (tokenise every record of a source once) and memory-mapped reading.
#include "data/token_file.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>

#include "chat/chat_template.h"
#include "common/error.h"
#include "data/chat_render.h"
#include "data/hash.h"
#include "io/mapped_file.h"
#include "tokenizer/tokenizer.h"

namespace moeforge::data {
namespace fs = std::filesystem;

namespace {
constexpr char kMagic[8] = {'M', 'F', 'T', 'O', 'K', '0', '1', '\n'};
constexpr uint64_t kFormatVersion = 1;

struct Header {
  char magic[8];
  uint64_t num_docs, num_tokens, docs_offset, mask_offset, meta_offset, meta_size, reserved;
};
static_assert(sizeof(Header) == 64);

struct DocEntry {
  uint64_t start;
  uint32_t length;
  uint32_t domain;
  uint64_t line;
};
static_assert(sizeof(DocEntry) == 24);

uint64_t align8(uint64_t n) { return (n + 7) & ~uint64_t{7}; }

struct Built {
  std::vector<uint32_t> tokens;
  std::vector<uint8_t> mask;  // filled only when some document is partly masked
  bool any_mask = false;
  std::vector<DocEntry> docs;
  std::vector<std::string> domains;
  std::map<std::string, uint32_t> domain_ids;
  BadRecordLog bad;
  size_t records = 0;
};

void append(Built& out, const std::vector<int32_t>& ids, uint8_t train) {
  for (int32_t id : ids) out.tokens.push_back(static_cast<uint32_t>(id));
  out.mask.insert(out.mask.end(), ids.size(), train);
  if (!train && !ids.empty()) out.any_mask = true;
}

Built tokenize_source(const SourceSpec& source, const tokenizer::Tokenizer& tok, const chat::ChatTemplate* tmpl,
                      const TokenizeSettings& settings) {
  Built out;
  RecordReader reader(source, settings.records);
  Record record;
  auto bad = [&](size_t line, const std::string& reason) {
    BadRecord b{source.path.string(), line, reason};
    if (settings.records.strict) fail(b.where(), ": bad record: ", reason, " (drop --strict to skip bad records)");
    out.bad.add(std::move(b), settings.records.max_bad_examples);
  };
  std::optional<int32_t> bos = settings.add_bos ? tok.bos_id() : std::nullopt;
  while (reader.next(record)) {
    uint64_t start = out.tokens.size();
    try {
      if (bos) append(out, {*bos}, 1);
      if (record.kind == Record::Kind::Text) {
        append(out, tok.encode(record.text, false), 1);
      } else {
        if (!tmpl) {
          bad(record.line, "chat record but the tokenizer has no chat template");
          out.tokens.resize(start);
          out.mask.resize(start);
          continue;
        }
        for (const ChatSegment& s : render_chat(*tmpl, record.messages, settings.assistant_only))
          append(out, tok.encode(s.text, false), s.train ? 1 : 0);
      }
    } catch (const Error& e) {
      if (settings.records.strict) throw;
      out.tokens.resize(start);
      out.mask.resize(start);
      bad(record.line, e.what());
      continue;
    }
    uint64_t length = out.tokens.size() - start;
    if (length == 0) continue;
    if (length > UINT32_MAX) fail(source.path.string(), ":", record.line, ": document too long");
    auto [it, inserted] = out.domain_ids.emplace(record.domain, static_cast<uint32_t>(out.domains.size()));
    if (inserted) out.domains.push_back(record.domain);
    out.docs.push_back({start, static_cast<uint32_t>(length), it->second, record.line});
  }
  const BadRecordLog& reader_bad = reader.bad_records();
  out.bad.count += reader_bad.count;
  for (const auto& b : reader_bad.examples)
    if (out.bad.examples.size() < settings.records.max_bad_examples) out.bad.examples.push_back(b);
  std::stable_sort(out.bad.examples.begin(), out.bad.examples.end(),
                   [](const BadRecord& a, const BadRecord& b) { return a.line < b.line; });
  out.records = reader.records_read();
  return out;
}

void write_token_file(const fs::path& path, const Built& b, const SourceSpec& source, const std::string& key) {
  nlohmann::json meta = {{"source", source.path.string()}, {"records", b.records}, {"domains", b.domains},
                         {"bad_records", b.bad.to_json()}, {"key", key}};
  std::string meta_text = meta.dump();
  Header h{};
  std::memcpy(h.magic, kMagic, 8);
  h.num_docs = b.docs.size();
  h.num_tokens = b.tokens.size();
  h.docs_offset = align8(64 + 4 * h.num_tokens);
  uint64_t docs_end = h.docs_offset + sizeof(DocEntry) * h.num_docs;
  h.mask_offset = b.any_mask ? docs_end : 0;
  h.meta_offset = b.any_mask ? docs_end + h.num_tokens : docs_end;
  h.meta_size = meta_text.size();

  fs::create_directories(path.parent_path());
  fs::path temp = path;
  temp += cat(".tmp.", ::getpid());
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) fail("cannot write token cache '", temp.string(), "' (set --cache-dir to a writable directory)");
    out.write(reinterpret_cast<const char*>(&h), sizeof h);
    out.write(reinterpret_cast<const char*>(b.tokens.data()), static_cast<std::streamsize>(4 * b.tokens.size()));
    static const char zeros[8] = {};
    out.write(zeros, static_cast<std::streamsize>(h.docs_offset - 64 - 4 * h.num_tokens));
    out.write(reinterpret_cast<const char*>(b.docs.data()), static_cast<std::streamsize>(sizeof(DocEntry) * b.docs.size()));
    if (b.any_mask) out.write(reinterpret_cast<const char*>(b.mask.data()), static_cast<std::streamsize>(b.mask.size()));
    out.write(meta_text.data(), static_cast<std::streamsize>(meta_text.size()));
    out.flush();
    if (!out) fail("error writing token cache '", temp.string(), "' (disk full?)");
  }
  std::error_code ec;
  fs::rename(temp, path, ec);
  if (ec) {
    fs::remove(temp, ec);
    fail("cannot move token cache into place at '", path.string(), "'");
  }
}

}  // namespace

struct TokenFile::Mapping {
  explicit Mapping(const fs::path& p) : file(p) {}
  MappedFile file;
};

TokenFile::~TokenFile() = default;

std::shared_ptr<const TokenFile> TokenFile::open(const fs::path& path) {
  std::shared_ptr<TokenFile> f(new TokenFile());
  f->map_ = std::make_unique<Mapping>(path);
  f->path_ = path;
  const uint8_t* base = f->map_->file.data();
  size_t size = f->map_->file.size();
  auto corrupt = [&](const char* what) {
    fail("token cache '", path.string(), "' is corrupt (", what, "); delete it to rebuild");
  };
  if (size < sizeof(Header)) corrupt("too short");
  Header h;
  std::memcpy(&h, base, sizeof h);
  if (std::memcmp(h.magic, kMagic, 8) != 0) corrupt("bad magic");
  uint64_t docs_end = h.docs_offset + sizeof(DocEntry) * h.num_docs;
  if (h.num_tokens > size / 4 || h.docs_offset < 64 + 4 * h.num_tokens || docs_end > size ||
      (h.mask_offset && h.mask_offset + h.num_tokens > size) || h.meta_offset + h.meta_size > size)
    corrupt("sizes do not match");
  f->num_docs_ = h.num_docs;
  f->num_tokens_ = h.num_tokens;
  f->tokens_ = reinterpret_cast<const uint32_t*>(base + 64);
  f->docs_ = base + h.docs_offset;
  f->mask_ = h.mask_offset ? base + h.mask_offset : nullptr;
  auto meta = nlohmann::json::parse(base + h.meta_offset, base + h.meta_offset + h.meta_size, nullptr, false);
  if (meta.is_discarded() || !meta.is_object()) corrupt("bad metadata");
  f->domains_ = meta.value("domains", std::vector<std::string>{});
  f->bad_ = BadRecordLog::from_json(meta.value("bad_records", nlohmann::json::object()));
  f->records_ = meta.value("records", size_t{0});
  for (size_t i = 0; i < f->num_docs_; ++i) {
    Doc d = f->doc(i);
    if (d.domain >= f->domains_.size() || (d.ids - f->tokens_) + d.length > f->num_tokens_) corrupt("bad document entry");
  }
  return f;
}

TokenFile::Doc TokenFile::doc(size_t index) const {
  DocEntry e;
  std::memcpy(&e, docs_ + sizeof(DocEntry) * index, sizeof e);
  Doc d;
  d.ids = tokens_ + e.start;
  d.mask = mask_ ? mask_ + e.start : nullptr;
  d.length = e.length;
  d.domain = e.domain;
  d.line = e.line;
  return d;
}

std::string token_file_key(const SourceSpec& source, const TokenizeSettings& s) {
  Hasher h(kFormatVersion);
  h.field(s.tokenizer_key).update_u64(hash_file(source.path));
  h.update_u64(static_cast<uint64_t>(source.format)).field(source.domain);
  h.field(s.records.text_field).field(s.records.messages_field).field(s.records.domain_field);
  h.update_u64(s.records.doc_sep.has_value()).field(s.records.doc_sep.value_or(""));
  h.update_u64(s.assistant_only).update_u64(s.add_bos);
  return hex64(h.digest());
}

std::shared_ptr<const TokenFile> load_or_build_token_file(const SourceSpec& source, const tokenizer::Tokenizer& tok,
                                                          const chat::ChatTemplate* tmpl, const TokenizeSettings& settings,
                                                          const fs::path& cache_dir, bool* built) {
  std::string key = token_file_key(source, settings);
  fs::path path = cache_dir / "tokens" / (key + ".mftok");
  std::error_code ec;
  bool exists = fs::is_regular_file(path, ec);
  if (!exists) write_token_file(path, tokenize_source(source, tok, tmpl, settings), source, key);
  if (built) *built = !exists;
  auto file = TokenFile::open(path);
  if (settings.records.strict && file->bad_records().count > 0) {
    const BadRecordLog& log = file->bad_records();
    std::string first = log.examples.empty() ? source.path.string()
                                             : cat(log.examples[0].where(), ": bad record: ", log.examples[0].reason);
    fail(first, " (", log.count, " bad records; drop --strict to skip them)");
  }
  return file;
}

fs::path default_cache_dir() {
  if (const char* dir = std::getenv("MOEFORGE_CACHE_DIR"); dir && *dir) return dir;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return fs::path(xdg) / "moeforge";
  if (const char* home = std::getenv("HOME"); home && *home) return fs::path(home) / ".cache" / "moeforge";
  return fs::path(".cache") / "moeforge";
}

std::string tokenizer_fingerprint(const tokenizer::Tokenizer& tok, const chat::ChatTemplate* tmpl) {
  Hasher h(0x746f6b);
  size_t vocab = tok.vocab_size();
  h.update_u64(vocab);
  for (size_t i = 0; i < vocab; ++i) {
    auto token = tok.id_to_token(static_cast<int32_t>(i));
    h.field(token ? *token : std::string("\x01<none>"));
    h.update_u64(tok.is_special(static_cast<int32_t>(i)));
  }
  h.update_u64(static_cast<uint64_t>(tok.bos_id().value_or(-1)));
  h.update_u64(static_cast<uint64_t>(tok.eos_id().value_or(-1)));
  h.update_u64(static_cast<uint64_t>(tok.pad_id().value_or(-1)));
  static const char* probe = "Hello, world! It's 3.14159 -- naïve café 日本語 🙂\n\tdef f(x):\n    return x  # end";
  for (int32_t id : tok.encode(probe, true)) h.update_u64(static_cast<uint64_t>(id));
  if (tmpl) {
    try {
      chat::ChatTemplateInputs in;
      in.messages = nlohmann::ordered_json::parse(
          R"([{"role":"system","content":"S"},{"role":"user","content":"U"},{"role":"assistant","content":"A"}])");
      std::tm fixed{};
      fixed.tm_year = 124;
      fixed.tm_mday = 1;
      in.now = fixed;
      h.field(tmpl->render(in));
    } catch (const Error& e) {
      h.field(e.what());
    }
  }
  return hex64(h.digest());
}

}  // namespace moeforge::data
