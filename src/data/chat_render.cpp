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
    if (full.compare(0, before.size(), before) != 0 || full.compare(0, through.size(), through) != 0 ||
        before.size() < done || through.size() < before.size())
      fail("chat template rewrites earlier turns (message ", i, "), so assistant turns cannot be masked; "
           "use --no-assistant-only");
    if (before.size() > done) segments.push_back({full.substr(done, before.size() - done), false});
    if (through.size() > before.size()) segments.push_back({full.substr(before.size(), through.size() - before.size()), true});
    done = through.size();
  }
  if (done < full.size()) segments.push_back({full.substr(done), false});
  return segments;
}

}  // namespace moeforge::data
