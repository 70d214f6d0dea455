// Jinja filters and tests (see jinja_builtins.h). Signatures and edge cases follow jinja2/filters.py
// and jinja2/tests.py; `tojson` is transformers' override (json.dumps with ensure_ascii=False).
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>

#include "chat/jinja_builtins.h"
#include "chat/jinja_text.h"
#include "common/error.h"

namespace moeforge::jinja {
namespace {

// Binds a call's positional/keyword arguments to a Python-style parameter list.
class Params {
 public:
  Params(const CallArgs& args, const char* fn, std::vector<const char*> names) : args_(args), fn_(fn), names_(std::move(names)) {
    if (args.positional.size() > names_.size()) fail(fn, "() takes at most ", names_.size(), " argument(s)");
    for (const auto& keyword : args.keyword) {
      const auto& k = keyword.first;  // not a structured binding: C++17 lambdas cannot capture those (clang)
      auto it = std::find_if(names_.begin(), names_.end(), [&](const char* n) { return k == n; });
      if (it == names_.end()) fail(fn, "() got an unexpected keyword argument '", k, "'");
      if (static_cast<size_t>(it - names_.begin()) < args.positional.size()) fail(fn, "() got multiple values for argument '", k, "'");
    }
  }
  const Value* get(size_t index) const {
    if (index < args_.positional.size()) return &args_.positional[index];
    for (const auto& [k, v] : args_.keyword) if (k == names_[index]) return &v;
    return nullptr;
  }
  Value value(size_t index, Value fallback) const {
    const Value* v = get(index);
    return v ? *v : fallback;
  }
  bool flag(size_t index, bool fallback) const {
    const Value* v = get(index);
    return v ? truthy(*v) : fallback;
  }
  std::optional<std::string> opt_string(size_t index) const {
    const Value* v = get(index);
    if (!v || v->is_none()) return std::nullopt;
    if (v->kind != Kind::String) fail(fn_, "(): argument '", names_[index], "' must be a string, not ", type_name(*v));
    return v->text;
  }

 private:
  const CallArgs& args_;
  const char* fn_;
  std::vector<const char*> names_;
};

// Positional arguments after the first `skip` (for select/map style *args).
CallArgs rest_args(const CallArgs& a, size_t skip) {
  CallArgs out;
  for (size_t i = skip; i < a.positional.size(); ++i) out.positional.push_back(a.positional[i]);
  out.keyword = a.keyword;
  return out;
}

// jinja2 make_attrgetter: "a.b.0" looked up item-first at each step.
Value attr_path(const Value& item, const std::string& path) {
  Value cur = item;
  for (const auto& part : py_split(path, std::string("."), -1)) {
    bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    cur = get_item(cur, numeric ? Value::from_int(std::strtoll(part.c_str(), nullptr, 10)) : Value::from_string(part));
  }
  return cur;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::optional<int64_t> parse_py_int(std::string s, int base) {
  s = py_strip(s, std::nullopt, true, true);
  std::string digits;
  size_t i = 0;
  bool negative = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
  if (base == 16 && s.size() > i + 1 && s[i] == '0' && (s[i + 1] | 32) == 'x') i += 2;
  else if (base == 8 && s.size() > i + 1 && s[i] == '0' && (s[i + 1] | 32) == 'o') i += 2;
  else if (base == 2 && s.size() > i + 1 && s[i] == '0' && (s[i + 1] | 32) == 'b') i += 2;
  for (; i < s.size(); ++i) {
    if (s[i] == '_' && !digits.empty() && i + 1 < s.size() && s[i + 1] != '_') continue;
    digits.push_back(s[i]);
  }
  if (digits.empty() || base < 2 || base > 36) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(digits.c_str(), &end, base);
  if (*end != '\0' || errno == ERANGE) return std::nullopt;
  return negative ? -v : v;
}

std::optional<double> parse_py_float(const std::string& text) {
  std::string s = py_strip(text, std::nullopt, true, true);
  std::string clean;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_' && i > 0 && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i - 1])) && std::isdigit(static_cast<unsigned char>(s[i + 1]))) continue;
    clean.push_back(s[i]);
  }
  if (clean.empty()) return std::nullopt;
  std::string lower = py_lower(clean);
  std::string body = (lower[0] == '+' || lower[0] == '-') ? lower.substr(1) : lower;
  if (body == "inf" || body == "infinity") return lower[0] == '-' ? -HUGE_VAL : HUGE_VAL;
  if (body == "nan") return std::nan("");
  if (body.empty() || !(std::isdigit(static_cast<unsigned char>(body[0])) || body[0] == '.')) return std::nullopt;
  if (body.find_first_of("x") != std::string::npos) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(clean.c_str(), &end);
  if (*end != '\0') return std::nullopt;
  return v;
}

Value filter_tojson(const Value& input, const CallArgs& args) {
  Params p(args, "tojson", {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonDumpOptions o;
  o.ensure_ascii = p.flag(0, false);
  if (const Value* indent = p.get(1); indent && !indent->is_none()) {
    if (indent->kind == Kind::String) o.indent = indent->text;
    else if (indent->kind == Kind::Int || indent->kind == Kind::Bool) o.indent = std::string(static_cast<size_t>(std::max<int64_t>(0, std::min<int64_t>(indent->kind == Kind::Int ? indent->integer : indent->boolean, 4096))), ' ');
    else fail("tojson(): indent must be an int or a string, not ", type_name(*indent));
    o.item_separator = ",";
  }
  if (const Value* sep = p.get(2); sep && !sep->is_none()) {
    if (!sep->is_sequence() || sep->list->size() != 2 || (*sep->list)[0].kind != Kind::String || (*sep->list)[1].kind != Kind::String) {
      fail("tojson(): separators must be a pair of strings");
    }
    o.item_separator = (*sep->list)[0].text;
    o.key_separator = (*sep->list)[1].text;
  }
  o.sort_keys = p.flag(3, false);
  return Value::from_string(dumps(input, o));
}

Value filter_indent(const Value& input, const CallArgs& args) {
  Params p(args, "indent", {"width", "first", "blank"});
  Value width = p.value(0, Value::from_int(4));
  std::string indention;
  if (width.kind == Kind::String) indention = width.text;
  else if (width.kind == Kind::Int || width.kind == Kind::Bool) indention = std::string(static_cast<size_t>(std::clamp<int64_t>(width.kind == Kind::Int ? width.integer : width.boolean, 0, 4096)), ' ');
  else fail("indent(): width must be an int or a string");
  bool first = p.flag(1, false), blank = p.flag(2, false);
  std::string s = to_str(input) + "\n";
  std::vector<std::string> lines = py_splitlines(s);
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) rv += (i ? "\n" + indention : "") + lines[i];
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (size_t i = 1; i < lines.size(); ++i) rv += "\n" + (lines[i].empty() ? lines[i] : indention + lines[i]);
  }
  if (first) rv = indention + rv;
  return Value::from_string(rv);
}

Value sort_key(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.kind == Kind::String) return Value::from_string(py_lower(v.text));
  return v;
}

bool less_than(const Value& a, const Value& b) { return truthy(binary_op("<", a, b)); }

Value filter_select(const Value& input, const CallArgs& args, bool use_attr, bool keep) {
  const char* fn = use_attr ? (keep ? "selectattr" : "rejectattr") : (keep ? "select" : "reject");
  size_t skip = 0;
  std::string attribute;
  if (use_attr) {
    if (args.positional.empty() || args.positional[0].kind != Kind::String) fail(fn, "(): missing attribute name");
    attribute = args.positional[0].text;
    skip = 1;
  }
  std::optional<std::string> test;
  if (args.positional.size() > skip) {
    if (args.positional[skip].kind != Kind::String) fail(fn, "(): test name must be a string");
    test = args.positional[skip].text;
    if (!is_known_test(*test)) fail("unsupported test '", *test, "'");
    ++skip;
  }
  CallArgs test_args = rest_args(args, skip);
  List out;
  for (const auto& item : iterate(input)) {
    Value subject = use_attr ? attr_path(item, attribute) : item;
    bool ok = test ? apply_test(*test, subject, test_args) : truthy(subject);
    if (ok == keep) out.push_back(item);
  }
  return Value::make_list(std::move(out));
}

Value filter_map(const Value& input, const CallArgs& args) {
  const Value* attribute = nullptr;
  const Value* fallback = nullptr;
  for (const auto& [k, v] : args.keyword) {
    if (k == "attribute") attribute = &v;
    else if (k == "default") fallback = &v;
  }
  List out;
  if (attribute || args.positional.empty()) {
    if (!attribute || attribute->kind != Kind::String) fail("map(): expected a filter name or attribute='...'");
    for (const auto& item : iterate(input)) {
      Value v = attr_path(item, attribute->text);
      out.push_back(v.is_undefined() && fallback ? *fallback : v);
    }
    return Value::make_list(std::move(out));
  }
  if (args.positional[0].kind != Kind::String) fail("map(): filter name must be a string");
  std::string filter = args.positional[0].text;
  if (!is_known_filter(filter)) fail("unsupported filter '", filter, "'");
  CallArgs filter_args = rest_args(args, 1);
  for (const auto& item : iterate(input)) out.push_back(apply_filter(filter, item, filter_args));
  return Value::make_list(std::move(out));
}

using Filter = std::function<Value(const Value&, const CallArgs&)>;

Value minmax(const Value& input, const CallArgs& args, bool want_max) {
  Params p(args, want_max ? "max" : "min", {"case_sensitive", "attribute"});
  bool cs = p.flag(0, false);
  auto attribute = p.opt_string(1);
  List items = iterate(input);
  if (items.empty()) return Value::undefined(std::string("No aggregated item, sequence was empty."));
  const Value* best = &items[0];
  for (const auto& item : items) {
    Value a = sort_key(attribute ? attr_path(item, *attribute) : item, cs);
    Value b = sort_key(attribute ? attr_path(*best, *attribute) : *best, cs);
    if (want_max ? less_than(b, a) : less_than(a, b)) best = &item;
  }
  return *best;
}

const std::map<std::string, Filter>& filters() {
  static const std::map<std::string, Filter> table = {
      {"abs", [](const Value& v, const CallArgs&) {
         if (v.kind == Kind::Float) return Value::from_float(std::fabs(v.number));
         if (v.kind == Kind::Int || v.kind == Kind::Bool) return unary_op(v.kind == Kind::Int && v.integer < 0 ? "-" : "+", v);
         fail("bad operand type for abs(): '", type_name(v), "'");
       }},
      {"attr", [](const Value& v, const CallArgs& a) {
         Params p(a, "attr", {"name"});
         auto name = p.opt_string(0);
         if (!name) fail("attr(): missing attribute name");
         if (v.kind == Kind::Namespace) return get_attr(v, *name);
         if (v.kind == Kind::Dict) {
           Value m = get_attr(Value::make_dict(), *name);  // methods only, never keys
           return m;
         }
         return get_attr(v, *name);
       }},
      {"capitalize", [](const Value& v, const CallArgs& a) { Params(a, "capitalize", {}); return Value::from_string(py_capitalize(to_str(v))); }},
      {"count", [](const Value& v, const CallArgs& a) { Params(a, "count", {}); return Value::from_int(length_of(v)); }},
      {"length", [](const Value& v, const CallArgs& a) { Params(a, "length", {}); return Value::from_int(length_of(v)); }},
      {"default", [](const Value& v, const CallArgs& a) {
         Params p(a, "default", {"default_value", "boolean"});
         if (v.is_undefined() || (p.flag(1, false) && !truthy(v))) return p.value(0, Value::from_string(""));
         return v;
       }},
      {"dictsort", [](const Value& v, const CallArgs& a) {
         Params p(a, "dictsort", {"case_sensitive", "by", "reverse"});
         if (v.kind != Kind::Dict) fail("dictsort(): expected a mapping, got ", type_name(v));
         bool cs = p.flag(0, false), reverse = p.flag(2, false);
         std::string by = p.opt_string(1).value_or("key");
         if (by != "key" && by != "value") fail("You can only sort by either \"key\" or \"value\"");
         std::vector<std::pair<std::string, Value>> items = v.dict->entries;
         std::stable_sort(items.begin(), items.end(), [&](const auto& x, const auto& y) {
           Value kx = by == "key" ? Value::from_string(x.first) : x.second;
           Value ky = by == "key" ? Value::from_string(y.first) : y.second;
           return less_than(sort_key(kx, cs), sort_key(ky, cs));
         });
         if (reverse) std::reverse(items.begin(), items.end());
         List out;
         for (auto& [k, item] : items) out.push_back(Value::make_tuple({Value::from_string(k), item}));
         return Value::make_list(std::move(out));
       }},
      {"escape", [](const Value& v, const CallArgs& a) { Params(a, "escape", {}); return Value::from_string(html_escape(to_str(v))); }},
      {"first", [](const Value& v, const CallArgs& a) {
         Params(a, "first", {});
         List items = iterate(v);
         return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
       }},
      {"last", [](const Value& v, const CallArgs& a) {
         Params(a, "last", {});
         List items = iterate(v);
         return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
       }},
      {"float", [](const Value& v, const CallArgs& a) {
         Params p(a, "float", {"default"});
         Value fallback = p.value(0, Value::from_float(0.0));
         if (v.kind == Kind::Float) return v;
         if (v.kind == Kind::Int || v.kind == Kind::Bool) return Value::from_float(v.kind == Kind::Int ? static_cast<double>(v.integer) : v.boolean);
         if (v.kind == Kind::String) {
           if (auto d = parse_py_float(v.text)) return Value::from_float(*d);
         }
         return fallback;
       }},
      {"int", [](const Value& v, const CallArgs& a) {
         Params p(a, "int", {"default", "base"});
         Value fallback = p.value(0, Value::from_int(0));
         Value base = p.value(1, Value::from_int(10));
         if (v.kind == Kind::Int) return v;
         if (v.kind == Kind::Bool) return Value::from_int(v.boolean);
         if (v.kind == Kind::Float) {
           if (!std::isfinite(v.number) || std::fabs(v.number) > 9.2e18) return fallback;
           return Value::from_int(static_cast<int64_t>(v.number));
         }
         if (v.kind == Kind::String) {
           if (auto i = parse_py_int(v.text, base.kind == Kind::Int ? static_cast<int>(base.integer) : 10)) return Value::from_int(*i);
           if (auto d = parse_py_float(v.text); d && std::isfinite(*d) && std::fabs(*d) < 9.2e18) return Value::from_int(static_cast<int64_t>(*d));
         }
         return fallback;
       }},
      {"indent", filter_indent},
      {"items", [](const Value& v, const CallArgs& a) {
         Params(a, "items", {});
         if (v.is_undefined()) return Value::make_list();
         if (v.kind != Kind::Dict) fail("Can only get item pairs from a mapping.");
         List out;
         for (const auto& [k, item] : v.dict->entries) out.push_back(Value::make_tuple({Value::from_string(k), item}));
         return Value::make_list(std::move(out));
       }},
      {"join", [](const Value& v, const CallArgs& a) {
         Params p(a, "join", {"d", "attribute"});
         std::string sep = p.get(0) ? to_str(*p.get(0)) : "";
         auto attribute = p.get(1) && !p.get(1)->is_none() ? std::optional<std::string>(to_str(*p.get(1))) : std::nullopt;
         std::string out;
         bool first = true;
         for (const auto& item : iterate(v)) {
           if (!first) out += sep;
           first = false;
           out += to_str(attribute ? attr_path(item, *attribute) : item);
         }
         return Value::from_string(out);
       }},
      {"list", [](const Value& v, const CallArgs& a) { Params(a, "list", {}); return Value::make_list(iterate(v)); }},
      {"lower", [](const Value& v, const CallArgs& a) { Params(a, "lower", {}); return Value::from_string(py_lower(to_str(v))); }},
      {"map", filter_map},
      {"max", [](const Value& v, const CallArgs& a) { return minmax(v, a, true); }},
      {"min", [](const Value& v, const CallArgs& a) { return minmax(v, a, false); }},
      {"reject", [](const Value& v, const CallArgs& a) { return filter_select(v, a, false, false); }},
      {"rejectattr", [](const Value& v, const CallArgs& a) { return filter_select(v, a, true, false); }},
      {"select", [](const Value& v, const CallArgs& a) { return filter_select(v, a, false, true); }},
      {"selectattr", [](const Value& v, const CallArgs& a) { return filter_select(v, a, true, true); }},
      {"replace", [](const Value& v, const CallArgs& a) {
         Params p(a, "replace", {"old", "new", "count"});
         if (!p.get(0) || !p.get(1)) fail("replace() missing required arguments");
         const Value* count = p.get(2);
         long n = count && count->kind == Kind::Int ? static_cast<long>(count->integer) : -1;
         return Value::from_string(py_replace(to_str(v), to_str(*p.get(0)), to_str(*p.get(1)), n));
       }},
      {"reverse", [](const Value& v, const CallArgs& a) {
         Params(a, "reverse", {});
         if (v.kind == Kind::String) {
           std::u32string s = decode_utf8(v.text);
           std::reverse(s.begin(), s.end());
           return Value::from_string(encode_utf8(s));
         }
         List items = iterate(v);
         std::reverse(items.begin(), items.end());
         return Value::make_list(std::move(items));
       }},
      {"round", [](const Value& v, const CallArgs& a) {
         Params p(a, "round", {"precision", "method"});
         Value prec = p.value(0, Value::from_int(0));
         std::string method = p.opt_string(1).value_or("common");
         if (method != "common" && method != "ceil" && method != "floor") fail("method must be common, ceil or floor");
         if (!v.is_number()) fail("type ", type_name(v), " doesn't define __round__ method");
         if (prec.kind != Kind::Int) fail("round(): precision must be an integer");
         if (method == "common" && v.kind != Kind::Float) return Value::from_int(v.kind == Kind::Int ? v.integer : v.boolean);
         double x = v.kind == Kind::Float ? v.number : static_cast<double>(v.kind == Kind::Int ? v.integer : v.boolean);
         double scale = std::pow(10.0, static_cast<double>(prec.integer));
         double scaled = x * scale;
         double r = method == "ceil" ? std::ceil(scaled) : method == "floor" ? std::floor(scaled) : std::nearbyint(scaled);
         return Value::from_float(r / scale);
       }},
      {"safe", [](const Value& v, const CallArgs& a) { Params(a, "safe", {}); return Value::from_string(to_str(v)); }},
      {"sort", [](const Value& v, const CallArgs& a) {
         Params p(a, "sort", {"reverse", "case_sensitive", "attribute"});
         bool reverse = p.flag(0, false), cs = p.flag(1, false);
         auto attribute = p.opt_string(2);
         List items = iterate(v);
         std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
           Value kx = sort_key(attribute ? attr_path(x, *attribute) : x, cs);
           Value ky = sort_key(attribute ? attr_path(y, *attribute) : y, cs);
           return reverse ? less_than(ky, kx) : less_than(kx, ky);
         });
         return Value::make_list(std::move(items));
       }},
      {"string", [](const Value& v, const CallArgs& a) { Params(a, "string", {}); return Value::from_string(to_str(v)); }},
      {"sum", [](const Value& v, const CallArgs& a) {
         Params p(a, "sum", {"attribute", "start"});
         auto attribute = p.opt_string(0);
         Value total = p.value(1, Value::from_int(0));
         for (const auto& item : iterate(v)) total = binary_op("+", total, attribute ? attr_path(item, *attribute) : item);
         return total;
       }},
      {"title", [](const Value& v, const CallArgs& a) { Params(a, "title", {}); return Value::from_string(py_title(to_str(v))); }},
      {"tojson", filter_tojson},
      {"trim", [](const Value& v, const CallArgs& a) {
         Params p(a, "trim", {"chars"});
         return Value::from_string(py_strip(to_str(v), p.opt_string(0), true, true));
       }},
      {"unique", [](const Value& v, const CallArgs& a) {
         Params p(a, "unique", {"case_sensitive", "attribute"});
         bool cs = p.flag(0, false);
         auto attribute = p.opt_string(1);
         List out, seen;
         for (const auto& item : iterate(v)) {
           Value key = sort_key(attribute ? attr_path(item, *attribute) : item, cs);
           if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, key); })) {
             seen.push_back(key);
             out.push_back(item);
           }
         }
         return Value::make_list(std::move(out));
       }},
      {"upper", [](const Value& v, const CallArgs& a) { Params(a, "upper", {}); return Value::from_string(py_upper(to_str(v))); }},
      {"wordcount", [](const Value& v, const CallArgs& a) {
         Params(a, "wordcount", {});
         int64_t n = 0;
         bool in_word = false;
         for (char32_t c : decode_utf8(to_str(v))) {
           bool word = c == '_' || (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z') || (c >= 0xC0 && !py_isspace(c));
           if (word && !in_word) ++n;
           in_word = word;
         }
         return Value::from_int(n);
       }},
  };
  return table;
}

std::string canonical_filter(const std::string& name) {
  if (name == "d") return "default";
  if (name == "e" || name == "forceescape") return "escape";
  return name;
}

using Test = std::function<bool(const Value&, const CallArgs&)>;

const Value& one_arg(const CallArgs& a, const char* test) {
  if (a.positional.size() != 1 || !a.keyword.empty()) fail("test '", test, "' takes exactly one argument");
  return a.positional[0];
}

int64_t int_for_test(const Value& v, const char* test) {
  if (v.kind == Kind::Int) return v.integer;
  if (v.kind == Kind::Bool) return v.boolean;
  fail("test '", test, "' needs an integer, got ", type_name(v));
}

const std::map<std::string, Test>& tests() {
  static const std::map<std::string, Test> table = {
      {"defined", [](const Value& v, const CallArgs&) { return !v.is_undefined(); }},
      {"undefined", [](const Value& v, const CallArgs&) { return v.is_undefined(); }},
      {"none", [](const Value& v, const CallArgs&) { return v.is_none(); }},
      {"boolean", [](const Value& v, const CallArgs&) { return v.kind == Kind::Bool; }},
      {"true", [](const Value& v, const CallArgs&) { return v.kind == Kind::Bool && v.boolean; }},
      {"false", [](const Value& v, const CallArgs&) { return v.kind == Kind::Bool && !v.boolean; }},
      {"integer", [](const Value& v, const CallArgs&) { return v.kind == Kind::Int; }},
      {"float", [](const Value& v, const CallArgs&) { return v.kind == Kind::Float; }},
      {"number", [](const Value& v, const CallArgs&) { return v.is_number(); }},
      {"string", [](const Value& v, const CallArgs&) { return v.kind == Kind::String; }},
      {"mapping", [](const Value& v, const CallArgs&) { return v.kind == Kind::Dict; }},
      {"iterable", [](const Value& v, const CallArgs&) {
         return v.is_undefined() || v.kind == Kind::String || v.is_sequence() || v.kind == Kind::Dict;
       }},
      {"sequence", [](const Value& v, const CallArgs&) {
         return v.is_undefined() || v.kind == Kind::String || v.is_sequence() || v.kind == Kind::Dict;
       }},
      {"callable", [](const Value& v, const CallArgs&) { return v.kind == Kind::Callable; }},
      {"odd", [](const Value& v, const CallArgs&) { return int_for_test(v, "odd") % 2 != 0; }},
      {"even", [](const Value& v, const CallArgs&) { return int_for_test(v, "even") % 2 == 0; }},
      {"divisibleby", [](const Value& v, const CallArgs& a) {
         const Value& n = one_arg(a, "divisibleby");
         Value r = binary_op("%", v, n);
         return !truthy(r);
       }},
      {"eq", [](const Value& v, const CallArgs& a) { return equals(v, one_arg(a, "eq")); }},
      {"ne", [](const Value& v, const CallArgs& a) { return !equals(v, one_arg(a, "ne")); }},
      {"lt", [](const Value& v, const CallArgs& a) { return truthy(binary_op("<", v, one_arg(a, "lt"))); }},
      {"le", [](const Value& v, const CallArgs& a) { return truthy(binary_op("<=", v, one_arg(a, "le"))); }},
      {"gt", [](const Value& v, const CallArgs& a) { return truthy(binary_op(">", v, one_arg(a, "gt"))); }},
      {"ge", [](const Value& v, const CallArgs& a) { return truthy(binary_op(">=", v, one_arg(a, "ge"))); }},
      {"in", [](const Value& v, const CallArgs& a) { return contains(one_arg(a, "in"), v); }},
      {"sameas", [](const Value& v, const CallArgs& a) {
         const Value& o = one_arg(a, "sameas");
         if (v.kind != o.kind) return false;
         if (v.is_sequence()) return v.list == o.list;
         if (v.kind == Kind::Dict || v.kind == Kind::Namespace) return v.dict == o.dict;
         return equals(v, o);
       }},
      {"lower", [](const Value& v, const CallArgs&) { return v.kind == Kind::String && v.text == py_lower(v.text); }},
      {"upper", [](const Value& v, const CallArgs&) { return v.kind == Kind::String && v.text == py_upper(v.text); }},
      {"escaped", [](const Value&, const CallArgs&) { return false; }},
      {"filter", [](const Value& v, const CallArgs&) { return v.kind == Kind::String && is_known_filter(v.text); }},
      {"test", [](const Value& v, const CallArgs&) { return v.kind == Kind::String && is_known_test(v.text); }},
  };
  return table;
}

std::string canonical_test(const std::string& name) {
  if (name == "==" || name == "equalto") return "eq";
  if (name == "!=") return "ne";
  if (name == "<" || name == "lessthan") return "lt";
  if (name == "<=") return "le";
  if (name == ">" || name == "greaterthan") return "gt";
  if (name == ">=") return "ge";
  return name;
}

}  // namespace

bool is_known_filter(const std::string& name) { return filters().count(canonical_filter(name)) > 0; }
bool is_known_test(const std::string& name) { return tests().count(canonical_test(name)) > 0; }

Value apply_filter(const std::string& name, const Value& input, const CallArgs& args) {
  auto it = filters().find(canonical_filter(name));
  if (it == filters().end()) fail("unsupported filter '", name, "'");
  return it->second(input, args);
}

bool apply_test(const std::string& name, const Value& input, const CallArgs& args) {
  auto it = tests().find(canonical_test(name));
  if (it == tests().end()) fail("unsupported test '", name, "'");
  return it->second(input, args);
}

}  // namespace moeforge::jinja
