// Chat records -> text segments with a train flag, for loss masks on assistant turns only.
//
// Choice: spans come from rendering prefixes of the conversation. Assistant turn i covers
// [len(render(msgs[:i], add_generation_prompt=true)), len(render(msgs[:i+1]))) of the full render,
// so it holds the reply and the template's end-of-turn marker (the model must learn to stop), but
// not the "assistant" header. Each segment is then tokenised on its own and the ids concatenated:
// the mask is exact by construction, and chat templates put these boundaries next to special
// tokens, where tokenising apart equals tokenising the whole. A template that rewrites history
// (a prefix render that is not a prefix of the full render) makes the record bad.
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
