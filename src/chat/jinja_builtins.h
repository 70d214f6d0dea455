// Jinja built-ins: filters, tests, operators, attribute/item access (with Python str/dict methods as
// bound callables) and global functions. All follow jinja2 + transformers' sandbox semantics.
// Errors are thrown as moeforge::Error without a location; the renderer adds "<label>:<line>: ".
#pragma once

#include <ctime>
#include <optional>
#include <string>

#include "chat/jinja_value.h"

namespace moeforge::jinja {

// -- filters and tests (jinja_filters.cpp) --
bool is_known_filter(const std::string& name);
bool is_known_test(const std::string& name);
Value apply_filter(const std::string& name, const Value& input, const CallArgs& args);
bool apply_test(const std::string& name, const Value& input, const CallArgs& args);

// -- access and methods (jinja_access.cpp) --
// `obj.name`: methods of str/dict/list first (as bound callables), then dict keys / namespace
// attributes; missing -> undefined. `obj[key]`: item first, then attribute.
Value get_attr(const Value& object, const std::string& name);
Value get_item(const Value& object, const Value& key);
Value get_slice(const Value& object, const Value& start, const Value& stop, const Value& step);

// -- operators and iteration (jinja_ops.cpp) --
Value binary_op(const std::string& op, const Value& left, const Value& right);
Value unary_op(const std::string& op, const Value& operand);
bool contains(const Value& container, const Value& item);  // Python `item in container`
// Items a for loop visits: list/tuple items, dict keys, string characters; undefined -> none.
List iterate(const Value& value);
// Throws the error an undefined value carries when it is used as data.
[[noreturn]] void fail_undefined(const Value& value);
// Python len(); throws for values without a length.
int64_t length_of(const Value& value);

// Global functions: range, namespace, dict, raise_exception, strftime_now (at `now`, local time).
Dict make_globals(const std::optional<std::tm>& now);

}  // namespace moeforge::jinja
