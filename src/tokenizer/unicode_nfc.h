// Unicode NFC (canonical composition), matching the tables inside HF `tokenizers`.
#pragma once

#include <string>
#include <string_view>

namespace moeforge::tokenizer {

// True when NFC certainly leaves `text` unchanged (fast scan; most text takes this path).
bool nfc_quick_check(std::string_view text);
// Appends the NFC form of `text` (valid UTF-8) to `out`.
void append_nfc(std::string& out, std::string_view text);
// Appends the NFD form of `text` (valid UTF-8) to `out`.
void append_nfd(std::string& out, std::string_view text);

}  // namespace moeforge::tokenizer
