// Values a Jinja template computes with: JSON-like data (none, bool, int, float, str, list, tuple,
// dict) plus jinja2's undefined, namespace() objects and callables (macros, globals, bound methods).
// Conversions mirror Python: str()/repr() printing, truthiness, == and json.dumps.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace moeforge::jinja {

// Key order matters (tojson, dict iteration), so all data is ordered_json.
using Json = nlohmann::ordered_json;

struct Value;
struct CallArgs;
using List = std::vector<Value>;

// An insertion-ordered str-keyed mapping (Python dict).
struct Dict {
  std::vector<std::pair<std::string, Value>> entries;
  const Value* find(const std::string& key) const;
  Value* find(const std::string& key);
  void set(const std::string& key, Value value);
};

using NativeFunction = std::function<Value(CallArgs& args)>;
struct Callable {
  std::string name;
  NativeFunction fn;
};

enum class Kind { Undefined, None, Bool, Int, Float, String, List, Tuple, Dict, Namespace, Callable };

struct Value {
  Kind kind = Kind::Undefined;
  bool boolean = false;
  int64_t integer = 0;
  double number = 0.0;
  std::string text;                     // String; for Undefined, why it is undefined (for errors)
  std::shared_ptr<List> list;           // List, Tuple
  std::shared_ptr<Dict> dict;           // Dict, Namespace (mutable attributes)
  std::shared_ptr<Callable> callable;   // Callable

  static Value undefined(std::string hint = "");
  static Value none();
  static Value from_bool(bool b);
  static Value from_int(int64_t i);
  static Value from_float(double d);
  static Value from_string(std::string s);
  static Value make_list(List items = {});
  static Value make_tuple(List items);
  static Value make_dict(Dict dict = {});
  static Value make_namespace(Dict attrs = {});
  static Value make_callable(std::string name, NativeFunction fn);

  bool is_undefined() const { return kind == Kind::Undefined; }
  bool is_none() const { return kind == Kind::None; }
  bool is_string() const { return kind == Kind::String; }
  bool is_sequence() const { return kind == Kind::List || kind == Kind::Tuple; }
  bool is_number() const { return kind == Kind::Int || kind == Kind::Float || kind == Kind::Bool; }
};

// Arguments of a call: positional then keyword (name=value), in source order.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

Value from_json(const Json& json);
// Throws moeforge::Error for undefined, callables and namespaces (not JSON-serialisable).
Json to_json(const Value& value);

bool truthy(const Value& value);
bool equals(const Value& a, const Value& b);  // Python ==
std::string to_str(const Value& value);       // Python str(); undefined prints as ""
std::string repr(const Value& value);         // Python repr()
std::string float_repr(double d);             // Python repr(float): 1.0, 1e+16, 1e-05, inf
std::string type_name(const Value& value);    // 'str', 'int', 'dict', 'NoneType', 'Undefined', ...

// Python json.dumps(value, ensure_ascii, indent, separators, sort_keys).
struct JsonDumpOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // nullopt: single line
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
};
std::string dumps(const Value& value, const JsonDumpOptions& options);

}  // namespace moeforge::jinja
