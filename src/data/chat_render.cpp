// Chat rendering into prompt / assistant segments by rendering conversation prefixes.
#include "data/chat_render.h"

#include "common/error.h"

namespace moeforge::data {
namespace {

std::string render(const chat::ChatTemplate& tmpl, const nlohmann::ordered_json& messages, size_t count,
                   bool generation_prompt) {
  chat::ChatTemplateInputs in;
  in.messages = nlohmann::ordered_json::array();
  for (size_t i = 0; i < count; ++i) in.messages.push_back(messages[i]);
  in.add_generation_prompt = generation_prompt;
  std::tm fixed{};  // deterministic strftime_now(): 2024-01-01
  fixed.tm_year = 124;
  fixed.tm_mday = 1;
  in.now = fixed;
  return tmpl.render(in);
}

}  // namespace

std::vector<ChatSegment> render_chat(const chat::ChatTemplate& tmpl, const nlohmann::ordered_json& messages,
                                     bool assistant_only) {
  std::string full = render(tmpl, messages, messages.size(), false);
  if (!assistant_only) return {{full, true}};
  std::vector<ChatSegment> segments;
  size_t done = 0;  // bytes of `full` already placed in segments
  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].value("role", "") != "assistant") continue;
    std::string before = i == 0 ? std::string() : render(tmpl, messages, i, true);
    std::string through = render(tmpl, messages, i + 1, false);
    size_t start = 0, end = 0;
    if (full.compare(0, before.size(), before) == 0 && full.compare(0, through.size(), through) == 0 &&
        before.size() >= done && through.size() >= before.size()) {
      start = before.size();
      end = through.size();
    } else {
      // The template renders this turn differently when it is the last one (Qwen3 adds an empty
      // <think> block): find the reply's content in the full render instead, and extend it by the
      // end-of-turn text that follows the content in the prefix render.
      const auto& content = messages[i].contains("content") ? messages[i]["content"] : nlohmann::ordered_json();
      if (!content.is_string())
        fail("chat template renders assistant message ", i, " differently in prefixes and its content is not a string");
      std::string reply = content.get<std::string>();
      size_t at = through.rfind(reply);
      std::string end_of_turn = at == std::string::npos ? "" : through.substr(at + reply.size());
      start = reply.empty() ? std::string::npos : full.find(reply, done);
      if (start == std::string::npos)
        fail("cannot find assistant message ", i, " in the rendered conversation (the template rewrites it)");
      end = start + reply.size();
      if (!end_of_turn.empty() && full.compare(end, end_of_turn.size(), end_of_turn) == 0) end += end_of_turn.size();
    }
    if (start > done) segments.push_back({full.substr(done, start - done), false});
    if (end > start) segments.push_back({full.substr(start, end - start), true});
    done = end;
  }
  if (done < full.size()) segments.push_back({full.substr(done), false});
  return segments;
}

}  // namespace moeforge::data
