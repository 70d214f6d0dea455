// Jinja lexer: splits template source into text and expression tokens, applying whitespace
// control exactly as jinja2 does with trim_blocks=True, lstrip_blocks=True (transformers' settings):
// `{%-`/`-%}` strip all whitespace, `{%+`/`+%}` opt out, the newline after a block or comment tag is
// dropped, and spaces/tabs before a block or comment tag at the start of a line are removed.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace moeforge::jinja {

enum class TokenType { Data, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Integer, Float, Operator, End };

struct Token {
  TokenType type;
  std::string value;  // text, name, decoded string literal, number digits or operator
  int line = 1;
};

struct LexerOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
  bool keep_trailing_newline = false;
};

// Throws moeforge::Error "<label>:<line>: ..." on malformed input.
std::vector<Token> tokenize(std::string_view source, const std::string& label, const LexerOptions& options = {});

}  // namespace moeforge::jinja
