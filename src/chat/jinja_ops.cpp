// Jinja operators, iteration, len() and global functions with Python semantics (see jinja_builtins.h).
#include <climits>
#include <cmath>

#include "chat/jinja_builtins.h"
#include "chat/jinja_text.h"
#include "common/error.h"

namespace moeforge::jinja {
namespace {

constexpr size_t kMaxBuiltSize = size_t{64} << 20;  // cap on strings/lists built by * and range()

bool is_intlike(const Value& v) { return v.kind == Kind::Int || v.kind == Kind::Bool; }
int64_t to_int(const Value& v) { return v.kind == Kind::Int ? v.integer : (v.boolean ? 1 : 0); }
double to_double(const Value& v) { return v.kind == Kind::Float ? v.number : static_cast<double>(to_int(v)); }

[[noreturn]] void unsupported_operands(const std::string& op, const Value& a, const Value& b) {
  fail("unsupported operand type(s) for ", op, ": '", type_name(a), "' and '", type_name(b), "'");
}

Value checked_int(__int128 v) {
  if (v > INT64_MAX || v < INT64_MIN) fail("integer overflow");
  return Value::from_int(static_cast<int64_t>(v));
}

Value repeat(const Value& seq, int64_t times) {
  if (times < 0) times = 0;
  if (seq.kind == Kind::String) {
    if (static_cast<double>(seq.text.size()) * static_cast<double>(times) > kMaxBuiltSize) fail("string repetition result too large");
    std::string out;
    for (int64_t i = 0; i < times; ++i) out += seq.text;
    return Value::from_string(std::move(out));
  }
  if (static_cast<double>(seq.list->size()) * static_cast<double>(times) > kMaxBuiltSize) fail("list repetition result too large");
  List out;
  for (int64_t i = 0; i < times; ++i) out.insert(out.end(), seq.list->begin(), seq.list->end());
  return seq.kind == Kind::Tuple ? Value::make_tuple(std::move(out)) : Value::make_list(std::move(out));
}

int compare_values(const std::string& op, const Value& a, const Value& b) {
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  if (a.is_number() && b.is_number()) {
    if (a.kind == Kind::Float || b.kind == Kind::Float) {
      double x = to_double(a), y = to_double(b);
      return x < y ? -1 : x > y ? 1 : 0;
    }
    int64_t x = to_int(a), y = to_int(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.kind == Kind::String && b.kind == Kind::String) return a.text.compare(b.text) < 0 ? -1 : a.text == b.text ? 0 : 1;
  if (a.is_sequence() && a.kind == b.kind) {
    size_t n = std::min(a.list->size(), b.list->size());
    for (size_t i = 0; i < n; ++i) {
      if (!equals((*a.list)[i], (*b.list)[i])) return compare_values(op, (*a.list)[i], (*b.list)[i]);
    }
    return a.list->size() < b.list->size() ? -1 : a.list->size() > b.list->size() ? 1 : 0;
  }
  fail("'", op, "' not supported between instances of '", type_name(a), "' and '", type_name(b), "'");
}

double py_fmod(double x, double y) {
  double r = std::fmod(x, y);
  if (r != 0 && ((r < 0) != (y < 0))) r += y;
  return r;
}

}  // namespace

[[noreturn]] void fail_undefined(const Value& value) {
  fail(value.text.empty() ? std::string("value is undefined") : value.text);
}

Value binary_op(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") return Value::from_string(to_str(a) + to_str(b));
  if (op == "==") return Value::from_bool(equals(a, b));
  if (op == "!=") return Value::from_bool(!equals(a, b));
  if (op == "in") return Value::from_bool(contains(b, a));
  if (op == "not in") return Value::from_bool(!contains(b, a));
  if (op == "<") return Value::from_bool(compare_values(op, a, b) < 0);
  if (op == "<=") return Value::from_bool(compare_values(op, a, b) <= 0);
  if (op == ">") return Value::from_bool(compare_values(op, a, b) > 0);
  if (op == ">=") return Value::from_bool(compare_values(op, a, b) >= 0);
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  bool both_int = is_intlike(a) && is_intlike(b);
  bool both_num = a.is_number() && b.is_number();
  if (op == "+") {
    if (both_int) return checked_int(static_cast<__int128>(to_int(a)) + to_int(b));
    if (both_num) return Value::from_float(to_double(a) + to_double(b));
    if (a.kind == Kind::String && b.kind == Kind::String) return Value::from_string(a.text + b.text);
    if (a.is_sequence() && a.kind == b.kind) {
      List out = *a.list;
      out.insert(out.end(), b.list->begin(), b.list->end());
      return a.kind == Kind::Tuple ? Value::make_tuple(std::move(out)) : Value::make_list(std::move(out));
    }
    if (a.kind == Kind::String || b.kind == Kind::String) {
      fail("can only concatenate str (not \"", type_name(a.kind == Kind::String ? b : a), "\") to str");
    }
    unsupported_operands(op, a, b);
  }
  if (op == "-") {
    if (both_int) return checked_int(static_cast<__int128>(to_int(a)) - to_int(b));
    if (both_num) return Value::from_float(to_double(a) - to_double(b));
    unsupported_operands(op, a, b);
  }
  if (op == "*") {
    if (both_int) return checked_int(static_cast<__int128>(to_int(a)) * to_int(b));
    if (both_num) return Value::from_float(to_double(a) * to_double(b));
    if ((a.kind == Kind::String || a.is_sequence()) && is_intlike(b)) return repeat(a, to_int(b));
    if ((b.kind == Kind::String || b.is_sequence()) && is_intlike(a)) return repeat(b, to_int(a));
    unsupported_operands(op, a, b);
  }
  if (op == "/") {
    if (!both_num) unsupported_operands(op, a, b);
    if (to_double(b) == 0) fail("division by zero");
    return Value::from_float(to_double(a) / to_double(b));
  }
  if (op == "//") {
    if (!both_num) unsupported_operands(op, a, b);
    if (to_double(b) == 0) fail("integer division or modulo by zero");
    if (both_int) {
      int64_t x = to_int(a), y = to_int(b);
      if (x == INT64_MIN && y == -1) fail("integer overflow");
      int64_t q = x / y;
      if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
      return Value::from_int(q);
    }
    return Value::from_float(std::floor(to_double(a) / to_double(b)));
  }
  if (op == "%") {
    if (a.kind == Kind::String) fail("unsupported: printf-style string formatting with %");
    if (!both_num) unsupported_operands(op, a, b);
    if (to_double(b) == 0) fail("integer division or modulo by zero");
    if (both_int) {
      int64_t x = to_int(a), y = to_int(b);
      if (y == -1) return Value::from_int(0);
      int64_t r = x % y;
      if (r != 0 && ((r < 0) != (y < 0))) r += y;
      return Value::from_int(r);
    }
    return Value::from_float(py_fmod(to_double(a), to_double(b)));
  }
  if (op == "**") {
    if (!both_num) unsupported_operands(op, a, b);
    if (both_int && to_int(b) >= 0) {
      int64_t base = to_int(a), e = to_int(b);
      if (base == 0) return Value::from_int(e == 0 ? 1 : 0);
      if (base == 1) return Value::from_int(1);
      if (base == -1) return Value::from_int(e % 2 ? -1 : 1);
      __int128 result = 1;
      for (int64_t i = 0; i < e; ++i) {
        result *= base;
        if (result > INT64_MAX || result < INT64_MIN) fail("integer overflow");
      }
      return checked_int(result);
    }
    if (to_double(a) == 0 && to_double(b) < 0) fail("0.0 cannot be raised to a negative power");
    double r = std::pow(to_double(a), to_double(b));
    if (std::isnan(r)) fail("unsupported: complex result of **");
    return Value::from_float(r);
  }
  fail("unsupported operator '", op, "'");
}

Value unary_op(const std::string& op, const Value& v) {
  if (op == "not") return Value::from_bool(!truthy(v));
  if (v.is_undefined()) fail_undefined(v);
  if (op == "-") {
    if (v.kind == Kind::Float) return Value::from_float(-v.number);
    if (is_intlike(v)) return checked_int(-static_cast<__int128>(to_int(v)));
    fail("bad operand type for unary -: '", type_name(v), "'");
  }
  if (op == "+") {
    if (v.kind == Kind::Float) return v;
    if (is_intlike(v)) return Value::from_int(to_int(v));
    fail("bad operand type for unary +: '", type_name(v), "'");
  }
  fail("unsupported operator '", op, "'");
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind) {
    case Kind::Undefined: return false;
    case Kind::String:
      if (item.kind != Kind::String) fail("'in <string>' requires string as left operand, not ", type_name(item));
      return container.text.find(item.text) != std::string::npos;
    case Kind::List:
    case Kind::Tuple:
      for (const auto& v : *container.list) if (equals(v, item)) return true;
      return false;
    case Kind::Dict:
      if (item.kind == Kind::List || item.kind == Kind::Dict) fail("unhashable type: '", type_name(item), "'");
      return item.kind == Kind::String && container.dict->find(item.text) != nullptr;
    default: fail("argument of type '", type_name(container), "' is not iterable");
  }
}

List iterate(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined: return {};
    case Kind::List:
    case Kind::Tuple: return *v.list;
    case Kind::Dict: {
      List keys;
      for (const auto& entry : v.dict->entries) keys.push_back(Value::from_string(entry.first));
      return keys;
    }
    case Kind::String: {
      List chars;
      for (char32_t c : decode_utf8(v.text)) {
        std::string s;
        append_utf8(s, c);
        chars.push_back(Value::from_string(std::move(s)));
      }
      return chars;
    }
    default: fail("'", type_name(v), "' object is not iterable");
  }
}

int64_t length_of(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined: return 0;
    case Kind::String: return static_cast<int64_t>(codepoint_count(v.text));
    case Kind::List:
    case Kind::Tuple: return static_cast<int64_t>(v.list->size());
    case Kind::Dict: return static_cast<int64_t>(v.dict->entries.size());
    default: fail("object of type '", type_name(v), "' has no len()");
  }
}

namespace {

int64_t int_arg(const Value& v, const char* what) {
  if (!is_intlike(v)) fail("'", type_name(v), "' object cannot be interpreted as an integer (", what, ")");
  return to_int(v);
}

Dict kwargs_to_dict(const CallArgs& args, const char* fn) {
  Dict out;
  if (args.positional.size() > 1) fail(fn, "() takes at most 1 positional argument");
  if (!args.positional.empty()) {
    const Value& src = args.positional[0];
    if (src.kind == Kind::Dict || src.kind == Kind::Namespace) {
      out = *src.dict;
    } else if (src.is_sequence()) {
      for (const auto& pair : *src.list) {
        if (!pair.is_sequence() || pair.list->size() != 2 || (*pair.list)[0].kind != Kind::String) {
          fail(fn, "(): expected a sequence of (str key, value) pairs");
        }
        out.set((*pair.list)[0].text, (*pair.list)[1]);
      }
    } else if (!src.is_undefined()) {
      fail(fn, "(): cannot convert '", type_name(src), "' to a mapping");
    }
  }
  for (const auto& [k, v] : args.keyword) out.set(k, v);
  return out;
}

}  // namespace

Dict make_globals(const std::optional<std::tm>& now) {
  Dict g;
  g.set("range", Value::make_callable("range", [](CallArgs& a) {
    if (!a.keyword.empty()) fail("range() takes no keyword arguments");
    size_t n = a.positional.size();
    if (n < 1 || n > 3) fail("range expected 1 to 3 arguments, got ", n);
    int64_t start = 0, stop, step = 1;
    if (n == 1) {
      stop = int_arg(a.positional[0], "range");
    } else {
      start = int_arg(a.positional[0], "range");
      stop = int_arg(a.positional[1], "range");
      if (n == 3) step = int_arg(a.positional[2], "range");
    }
    if (step == 0) fail("range() arg 3 must not be zero");
    List out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      if (out.size() >= kMaxBuiltSize / 8) fail("range() too large");
      out.push_back(Value::from_int(i));
    }
    return Value::make_list(std::move(out));
  }));
  g.set("namespace", Value::make_callable("namespace", [](CallArgs& a) {
    Dict attrs = kwargs_to_dict(a, "namespace");
    for (const auto& entry : attrs.entries) {
      if (!entry.first.empty() && entry.first[0] == '_') {
        fail("Chat templates cannot store underscore-prefixed attributes on a namespace, but got '", entry.first, "'");
      }
    }
    return Value::make_namespace(std::move(attrs));
  }));
  g.set("dict", Value::make_callable("dict", [](CallArgs& a) { return Value::make_dict(kwargs_to_dict(a, "dict")); }));
  g.set("raise_exception", Value::make_callable("raise_exception", [](CallArgs& a) -> Value {
    std::string message = a.positional.empty() ? std::string() : to_str(a.positional[0]);
    fail(message);
  }));
  g.set("strftime_now", Value::make_callable("strftime_now", [now](CallArgs& a) {
    if (a.positional.size() != 1 || a.positional[0].kind != Kind::String) fail("strftime_now() expects one format string");
    std::tm when{};
    if (now) {
      when = *now;
    } else {
      std::time_t t = std::time(nullptr);
      localtime_r(&t, &when);
    }
    const std::string& fmt = a.positional[0].text;
    if (fmt.empty()) return Value::from_string("");
    std::string buf(fmt.size() * 8 + 64, '\0');
    size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &when);
    buf.resize(n);
    return Value::from_string(buf);
  }));
  return g;
}

}  // namespace moeforge::jinja
