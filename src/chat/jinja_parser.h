// Jinja parser: tokens -> statement tree, following jinja2/parser.py's grammar and operator
// precedence. Unknown tags, filters and tests are rejected here (as jinja2 does at compile time).
#pragma once

#include <string>
#include <vector>

#include "chat/jinja_ast.h"
#include "chat/jinja_lexer.h"

namespace moeforge::jinja {

// Throws moeforge::Error "<label>:<line>: ..." on syntax errors and unsupported constructs.
NodeList parse(const std::vector<Token>& tokens, const std::string& label);

}  // namespace moeforge::jinja
