// Unicode-aware string helpers with Python str semantics (code-point indexing, unicode whitespace),
// used by the Jinja engine so that length, slicing and strip() match what jinja2 does in Python.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moeforge::jinja {

// UTF-8 -> code points. Invalid bytes map to U+DC80..U+DCFF (like Python's surrogateescape) and are
// restored byte-for-byte by encode_utf8, so nothing is ever lost or rejected.
std::u32string decode_utf8(std::string_view text);
std::string encode_utf8(std::u32string_view text);
void append_utf8(std::string& out, char32_t cp);
size_t codepoint_count(std::string_view text);

// Python's str.isspace() for one code point.
bool py_isspace(char32_t cp);
// Python str.strip/lstrip/rstrip: no `chars` strips unicode whitespace, else any of `chars`.
std::string py_strip(std::string_view text, const std::optional<std::string>& chars, bool left, bool right);
// Python str.split(sep=None, maxsplit=-1) and rsplit.
std::vector<std::string> py_split(std::string_view text, const std::optional<std::string>& sep, long maxsplit);
std::vector<std::string> py_rsplit(std::string_view text, const std::optional<std::string>& sep, long maxsplit);
// Python str.replace(old, new, count=-1), including the empty-`old` case.
std::string py_replace(std::string_view text, std::string_view old, std::string_view replacement, long count);
// Python str.splitlines() (without keepends).
std::vector<std::string> py_splitlines(std::string_view text);
// Python str.upper/lower/capitalize/title for ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic;
// other scripts are left unchanged.
std::string py_upper(std::string_view text);
std::string py_lower(std::string_view text);
std::string py_capitalize(std::string_view text);
std::string py_str_title(std::string_view text);
std::string py_title(std::string_view text);  // jinja2's `title` filter

}  // namespace moeforge::jinja
