// `moeforge tokenize`: encode text to ids (or --decode ids to text) with a Hugging Face
// tokenizer.json; --lines does one JSON-encoded text per line (parity tests), --bench times encode.
#include <chrono>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "common/error.h"
#include "tokenizer/tokenizer.h"

namespace moeforge::cli {
namespace {

struct TokenizeOptions {
  std::string tokenizer;
  std::string text;
  std::string file;
  bool json = false;
  bool no_special = false;
  bool decode = false;
  bool lines = false;
  int bench = 0;
};

std::string read_input(const TokenizeOptions& o) {
  if (!o.text.empty() || o.file.empty()) return o.text;
  if (o.file == "-") return {std::istreambuf_iterator<char>(std::cin), {}};
  std::ifstream in(o.file, std::ios::binary);
  if (!in) fail("cannot open '", o.file, "'");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::vector<std::string> split_lines(const std::string& input) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < input.size()) {
    size_t end = input.find('\n', start);
    if (end == std::string::npos) end = input.size();
    std::string line = input.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    start = end + 1;
  }
  return lines;
}

// "1,2,3", "1 2 3" or "[1, 2, 3]" -> ids.
std::vector<int32_t> parse_ids(const std::string& text, const std::string& where) {
  std::vector<int32_t> ids;
  std::string token;
  auto flush = [&] {
    if (token.empty()) return;
    size_t used = 0;
    long long value = -1;
    try {
      value = std::stoll(token, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != token.size() || value < 0 || value > INT32_MAX)
      fail(where, ": '", token, "' is not a token id");
    ids.push_back(static_cast<int32_t>(value));
    token.clear();
  };
  for (char c : text) {
    if (c == ',' || c == '[' || c == ']' || std::isspace(static_cast<unsigned char>(c))) flush();
    else token += c;
  }
  flush();
  return ids;
}

std::string ids_to_json(const std::vector<int32_t>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(ids[i]);
  }
  return out + "]";
}

std::string ids_to_text(const std::vector<int32_t>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ' ';
    out += std::to_string(ids[i]);
  }
  return out;
}

std::string to_json_string(const std::string& text) {
  return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::vector<std::string> parse_json_lines(const std::string& input) {
  std::vector<std::string> texts;
  std::vector<std::string> lines = split_lines(input);
  for (size_t i = 0; i < lines.size(); ++i) {
    nlohmann::json j = nlohmann::json::parse(lines[i], nullptr, false);
    if (j.is_discarded() || !j.is_string()) fail("--lines: line ", i + 1, " is not a JSON string");
    texts.push_back(j.get<std::string>());
  }
  return texts;
}

int run_bench(const Tokenizer& tokenizer, const TokenizeOptions& o, const std::string& input) {
  std::vector<std::string> texts = o.lines ? parse_json_lines(input) : std::vector<std::string>{input};
  size_t bytes = 0;
  for (const auto& t : texts) bytes += t.size();
  size_t tokens = 0;
  double best = 1e300;
  for (int round = 0; round < o.bench; ++round) {
    auto start = std::chrono::steady_clock::now();
    tokens = 0;
    for (const auto& t : texts) tokens += tokenizer.encode(t, !o.no_special).size();
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::min(best, seconds);
  }
  nlohmann::json report = {{"bytes", bytes},   {"texts", texts.size()}, {"tokens", tokens},
                           {"rounds", o.bench}, {"best_seconds", best},
                           {"mb_per_s", bytes / 1e6 / best}};
  std::cout << report.dump() << "\n";
  return 0;
}

CommandRegistrar tokenize_command([](CLI::App& app) {
  auto o = std::make_shared<TokenizeOptions>();
  auto* sub = app.add_subcommand("tokenize", "Encode text to token ids (or decode ids) with a Hugging Face tokenizer.json");
  accepts_hub_id(sub->add_option("--tokenizer", o->tokenizer, "tokenizer.json, or a directory holding it"))->required();
  auto* text = sub->add_option("--text", o->text, "Text to encode (with --decode: ids as '1,2,3' or '1 2 3')");
  auto* file = sub->add_option("--file", o->file, "Read the input from this file ('-' for stdin)");
  text->excludes(file);
  sub->add_flag("--json", o->json, "Print ids as a JSON array (decode: the text as a JSON string)");
  sub->add_flag("--no-special", o->no_special,
                "Encode without the post-processor's special tokens (BOS/EOS); decode: skip special tokens");
  sub->add_flag("--decode", o->decode, "Decode ids to text instead of encoding");
  sub->add_flag("--lines", o->lines,
                "Batch: each input line is a JSON string (decode: a JSON array of ids); prints one "
                "JSON array (decode: JSON string) per line");
  sub->add_option("--bench", o->bench, "Time N rounds of encoding the input (load excluded); prints JSON with MB/s")
      ->check(CLI::PositiveNumber);
  set_action(sub, [o] {
    if (o->text.empty() && o->file.empty()) fail("tokenize: give --text or --file");
    Tokenizer tokenizer = Tokenizer::load(o->tokenizer);
    std::string input = read_input(*o);
    if (o->bench > 0) return run_bench(tokenizer, *o, input);
    std::string out;
    if (o->decode) {
      if (o->lines) {
        std::vector<std::string> lines = split_lines(input);
        for (size_t i = 0; i < lines.size(); ++i) {
          std::vector<int32_t> ids = parse_ids(lines[i], cat("line ", i + 1));
          out += to_json_string(tokenizer.decode(ids, o->no_special)) + "\n";
        }
      } else {
        std::string text = tokenizer.decode(parse_ids(input, "--decode input"), o->no_special);
        out = o->json ? to_json_string(text) + "\n" : text + "\n";
      }
    } else if (o->lines) {
      for (const std::string& t : parse_json_lines(input))
        out += ids_to_json(tokenizer.encode(t, !o->no_special)) + "\n";
    } else {
      std::vector<int32_t> ids = tokenizer.encode(input, !o->no_special);
      out = (o->json ? ids_to_json(ids) : ids_to_text(ids)) + "\n";
    }
    std::cout << out;
    std::cout.flush();
    return 0;
  });
});

}  // namespace
}  // namespace moeforge::cli
