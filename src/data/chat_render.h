// Chat records -> text segments with a train flag, for loss masks on assistant turns only.
//
// Choice: spans come from rendering prefixes of the conversation. Assistant turn i covers
// [len(render(msgs[:i], add_generation_prompt=true)), len(render(msgs[:i+1]))) of the full render,
// so it holds the reply and the template's end-of-turn marker (the model must learn to stop), but
// not the "assistant" header. Each segment is then tokenised on its own and the ids concatenated:
// the mask is exact by construction, and chat templates put these boundaries next to special
// tokens, where tokenising apart equals tokenising the whole. Templates that render a turn
// differently once it is no longer the last (Qwen3's empty <think> block) break the prefix
// property; for such a turn the span is found by locating the reply's text in the full render
// (after the previous span) and extending it by the end-of-turn text that follows the reply in
// the prefix render. A reply that cannot be found makes the record bad.
#pragma once

#include <string>
#include <vector>

#include "chat/chat_template.h"

namespace moeforge::data {

struct ChatSegment {
  std::string text;
  bool train = false;  // part of an assistant turn
};

// Renders `messages` with the template. assistant_only: segments alternate prompt/assistant;
// otherwise one segment with train = true. Throws moeforge::Error (caller turns it into a bad
// record) when rendering fails or the template rewrites history.
std::vector<ChatSegment> render_chat(const chat::ChatTemplate& chat_template,
                                     const nlohmann::ordered_json& messages, bool assistant_only);

}  // namespace moeforge::data
