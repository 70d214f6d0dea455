// Attribute, item and slice access with jinja2's sandboxed getattr/getitem rules, and the Python
// str/dict/list methods templates call (s.strip(), d.get(k), d.items(), ...) as bound callables.
#include <algorithm>

#include "chat/jinja_builtins.h"
#include "chat/jinja_text.h"
#include "common/error.h"

namespace moeforge::jinja {
namespace {

using Method = Value (*)(const Value& self, CallArgs& args);

const Value* arg_at(const CallArgs& a, size_t index, const char* name) {
  if (index < a.positional.size()) return &a.positional[index];
  for (const auto& [k, v] : a.keyword) if (k == name) return &v;
  return nullptr;
}

void check_arity(const CallArgs& a, size_t max_args, const char* method) {
  if (a.positional.size() + a.keyword.size() > max_args) fail(method, "() takes at most ", max_args, " argument(s)");
}

std::optional<std::string> opt_string(const Value* v, const char* method) {
  if (!v || v->is_none()) return std::nullopt;
  if (v->kind != Kind::String) fail(method, "() argument must be str or None, not ", type_name(*v));
  return v->text;
}

const std::string& need_string(const Value* v, const char* method) {
  if (!v) fail(method, "() missing required argument");
  if (v->kind != Kind::String) fail(method, "() argument must be str, not ", type_name(*v));
  return v->text;
}

long opt_long(const Value* v, long fallback, const char* method) {
  if (!v || v->is_none()) return fallback;
  if (v->kind != Kind::Int && v->kind != Kind::Bool) fail(method, "() integer argument expected, got ", type_name(*v));
  return static_cast<long>(v->kind == Kind::Int ? v->integer : v->boolean);
}

Value strings(const std::vector<std::string>& parts) {
  List out;
  for (const auto& p : parts) out.push_back(Value::from_string(p));
  return Value::make_list(std::move(out));
}

bool affix_match(const Value& self, CallArgs& a, bool prefix, const char* method) {
  check_arity(a, 1, method);
  const Value* what = arg_at(a, 0, "prefix");
  if (!what) fail(method, "() takes exactly one argument");
  auto test = [&](const std::string& s) {
    if (s.size() > self.text.size()) return false;
    return prefix ? self.text.compare(0, s.size(), s) == 0 : self.text.compare(self.text.size() - s.size(), s.size(), s) == 0;
  };
  if (what->kind == Kind::String) return test(what->text);
  if (what->kind == Kind::Tuple) {
    for (const auto& item : *what->list) {
      if (item.kind != Kind::String) fail("tuple for ", method, " must only contain str");
      if (test(item.text)) return true;
    }
    return false;
  }
  fail(method, " first arg must be str or a tuple of str, not ", type_name(*what));
}

template <typename Pred>
bool all_chars(const std::string& s, Pred pred) {
  if (s.empty()) return false;
  for (char32_t c : decode_utf8(s)) if (!pred(c)) return false;
  return true;
}

int64_t find_sub(const std::string& hay, const std::string& needle, bool reverse) {
  size_t pos = reverse ? hay.rfind(needle) : hay.find(needle);
  if (pos == std::string::npos) return -1;
  return static_cast<int64_t>(codepoint_count(std::string_view(hay).substr(0, pos)));
}

const std::vector<std::pair<const char*, Method>>& string_methods() {
  static const std::vector<std::pair<const char*, Method>> methods = {
      {"strip", [](const Value& s, CallArgs& a) { check_arity(a, 1, "strip"); return Value::from_string(py_strip(s.text, opt_string(arg_at(a, 0, "chars"), "strip"), true, true)); }},
      {"lstrip", [](const Value& s, CallArgs& a) { check_arity(a, 1, "lstrip"); return Value::from_string(py_strip(s.text, opt_string(arg_at(a, 0, "chars"), "lstrip"), true, false)); }},
      {"rstrip", [](const Value& s, CallArgs& a) { check_arity(a, 1, "rstrip"); return Value::from_string(py_strip(s.text, opt_string(arg_at(a, 0, "chars"), "rstrip"), false, true)); }},
      {"split", [](const Value& s, CallArgs& a) {
         check_arity(a, 2, "split");
         auto sep = opt_string(arg_at(a, 0, "sep"), "split");
         if (sep && sep->empty()) fail("empty separator");
         return strings(py_split(s.text, sep, opt_long(arg_at(a, 1, "maxsplit"), -1, "split")));
       }},
      {"rsplit", [](const Value& s, CallArgs& a) {
         check_arity(a, 2, "rsplit");
         auto sep = opt_string(arg_at(a, 0, "sep"), "rsplit");
         if (sep && sep->empty()) fail("empty separator");
         return strings(py_rsplit(s.text, sep, opt_long(arg_at(a, 1, "maxsplit"), -1, "rsplit")));
       }},
      {"splitlines", [](const Value& s, CallArgs& a) { check_arity(a, 0, "splitlines"); return strings(py_splitlines(s.text)); }},
      {"startswith", [](const Value& s, CallArgs& a) { return Value::from_bool(affix_match(s, a, true, "startswith")); }},
      {"endswith", [](const Value& s, CallArgs& a) { return Value::from_bool(affix_match(s, a, false, "endswith")); }},
      {"upper", [](const Value& s, CallArgs& a) { check_arity(a, 0, "upper"); return Value::from_string(py_upper(s.text)); }},
      {"lower", [](const Value& s, CallArgs& a) { check_arity(a, 0, "lower"); return Value::from_string(py_lower(s.text)); }},
      {"title", [](const Value& s, CallArgs& a) { check_arity(a, 0, "title"); return Value::from_string(py_str_title(s.text)); }},
      {"capitalize", [](const Value& s, CallArgs& a) { check_arity(a, 0, "capitalize"); return Value::from_string(py_capitalize(s.text)); }},
      {"replace", [](const Value& s, CallArgs& a) {
         check_arity(a, 3, "replace");
         const std::string& old = need_string(arg_at(a, 0, "old"), "replace");
         const std::string& repl = need_string(arg_at(a, 1, "new"), "replace");
         return Value::from_string(py_replace(s.text, old, repl, opt_long(arg_at(a, 2, "count"), -1, "replace")));
       }},
      {"find", [](const Value& s, CallArgs& a) { check_arity(a, 1, "find"); return Value::from_int(find_sub(s.text, need_string(arg_at(a, 0, "sub"), "find"), false)); }},
      {"rfind", [](const Value& s, CallArgs& a) { check_arity(a, 1, "rfind"); return Value::from_int(find_sub(s.text, need_string(arg_at(a, 0, "sub"), "rfind"), true)); }},
      {"index", [](const Value& s, CallArgs& a) {
         check_arity(a, 1, "index");
         int64_t at = find_sub(s.text, need_string(arg_at(a, 0, "sub"), "index"), false);
         if (at < 0) fail("substring not found");
         return Value::from_int(at);
       }},
      {"count", [](const Value& s, CallArgs& a) {
         check_arity(a, 1, "count");
         const std::string& sub = need_string(arg_at(a, 0, "sub"), "count");
         if (sub.empty()) return Value::from_int(static_cast<int64_t>(codepoint_count(s.text)) + 1);
         int64_t n = 0;
         for (size_t p = s.text.find(sub); p != std::string::npos; p = s.text.find(sub, p + sub.size())) ++n;
         return Value::from_int(n);
       }},
      {"join", [](const Value& s, CallArgs& a) {
         check_arity(a, 1, "join");
         const Value* items = arg_at(a, 0, "iterable");
         if (!items) fail("join() takes exactly one argument");
         std::string out;
         bool first = true;
         for (const auto& item : iterate(*items)) {
           if (item.kind != Kind::String) fail("sequence item: expected str instance, ", type_name(item), " found");
           if (!first) out += s.text;
           first = false;
           out += item.text;
         }
         return Value::from_string(out);
       }},
      {"isdigit", [](const Value& s, CallArgs&) { return Value::from_bool(all_chars(s.text, [](char32_t c) { return c >= '0' && c <= '9'; })); }},
      {"isalpha", [](const Value& s, CallArgs&) { return Value::from_bool(all_chars(s.text, [](char32_t c) { return (c | 32) >= 'a' && (c | 32) <= 'z'; })); }},
      {"isalnum", [](const Value& s, CallArgs&) { return Value::from_bool(all_chars(s.text, [](char32_t c) { return ((c | 32) >= 'a' && (c | 32) <= 'z') || (c >= '0' && c <= '9'); })); }},
      {"isspace", [](const Value& s, CallArgs&) { return Value::from_bool(all_chars(s.text, py_isspace)); }},
      {"islower", [](const Value& s, CallArgs&) { return Value::from_bool(s.text != py_upper(s.text) && s.text == py_lower(s.text)); }},
      {"isupper", [](const Value& s, CallArgs&) { return Value::from_bool(s.text != py_lower(s.text) && s.text == py_upper(s.text)); }},
  };
  return methods;
}

const std::vector<std::pair<const char*, Method>>& dict_methods() {
  static const std::vector<std::pair<const char*, Method>> methods = {
      {"get", [](const Value& d, CallArgs& a) {
         check_arity(a, 2, "get");
         const Value* key = arg_at(a, 0, "key");
         if (!key) fail("get expected at least 1 argument, got 0");
         const Value* fallback = arg_at(a, 1, "default");
         const Value* found = key->kind == Kind::String ? d.dict->find(key->text) : nullptr;
         return found ? *found : fallback ? *fallback : Value::none();
       }},
      {"items", [](const Value& d, CallArgs& a) {
         check_arity(a, 0, "items");
         List out;
         for (const auto& [k, v] : d.dict->entries) out.push_back(Value::make_tuple({Value::from_string(k), v}));
         return Value::make_list(std::move(out));
       }},
      {"keys", [](const Value& d, CallArgs& a) {
         check_arity(a, 0, "keys");
         return Value::make_list(iterate(d));
       }},
      {"values", [](const Value& d, CallArgs& a) {
         check_arity(a, 0, "values");
         List out;
         for (const auto& entry : d.dict->entries) out.push_back(entry.second);
         return Value::make_list(std::move(out));
       }},
  };
  return methods;
}

const std::vector<std::pair<const char*, Method>>& list_methods() {
  static const std::vector<std::pair<const char*, Method>> methods = {
      {"index", [](const Value& l, CallArgs& a) {
         check_arity(a, 1, "index");
         const Value* x = arg_at(a, 0, "value");
         if (!x) fail("index() takes exactly one argument");
         for (size_t i = 0; i < l.list->size(); ++i) if (equals((*l.list)[i], *x)) return Value::from_int(static_cast<int64_t>(i));
         fail(repr(*x), " is not in list");
       }},
      {"count", [](const Value& l, CallArgs& a) {
         check_arity(a, 1, "count");
         const Value* x = arg_at(a, 0, "value");
         if (!x) fail("count() takes exactly one argument");
         int64_t n = 0;
         for (const auto& v : *l.list) n += equals(v, *x);
         return Value::from_int(n);
       }},
  };
  return methods;
}

// Real Python methods we do not implement: using them is an error, not a silent undefined.
bool is_other_method(Kind kind, const std::string& name) {
  static const char* const str_other[] = {"format", "format_map", "encode", "center", "ljust", "rjust", "zfill", "partition",
                                          "rpartition", "swapcase", "casefold", "expandtabs", "translate", "maketrans",
                                          "isnumeric", "isdecimal", "isidentifier", "isprintable", "istitle", "isascii",
                                          "removeprefix", "removesuffix", "rindex"};
  static const char* const dict_other[] = {"pop", "popitem", "update", "setdefault", "clear", "copy", "fromkeys"};
  static const char* const list_other[] = {"append", "extend", "insert", "pop", "remove", "sort", "reverse", "clear", "copy"};
  auto in = [&](const auto& names) {
    for (const char* n : names) if (name == n) return true;
    return false;
  };
  if (kind == Kind::String) return in(str_other);
  if (kind == Kind::Dict) return in(dict_other);
  if (kind == Kind::List || kind == Kind::Tuple) return in(list_other);
  return false;
}

std::optional<Value> bound_method(const Value& object, const std::string& name) {
  const std::vector<std::pair<const char*, Method>>* table = nullptr;
  const char* type = "";
  if (object.kind == Kind::String) table = &string_methods(), type = "str";
  else if (object.kind == Kind::Dict) table = &dict_methods(), type = "dict";
  else if (object.is_sequence()) table = &list_methods(), type = object.kind == Kind::Tuple ? "tuple" : "list";
  if (!table) return std::nullopt;
  for (const auto& [method_name, fn] : *table) {
    if (name == method_name) {
      Method method = fn;
      Value self = object;
      return Value::make_callable(std::string(type) + "." + name, [self, method](CallArgs& args) { return method(self, args); });
    }
  }
  if (is_other_method(object.kind, name)) {
    if (object.kind != Kind::String) fail("access to attribute '", name, "' of '", type, "' object is unsafe (templates cannot modify data)");
    fail("unsupported method '", type, ".", name, "'");
  }
  return std::nullopt;
}

std::string object_desc(const Value& v) {
  if (v.is_none()) return "None";
  return "'" + type_name(v) + " object'";
}

// Python slice.indices(length) then the selected positions.
std::vector<size_t> slice_positions(int64_t length, const Value& start_v, const Value& stop_v, const Value& step_v) {
  auto as_opt = [](const Value& v, const char* what) -> std::optional<int64_t> {
    if (v.is_none() || v.is_undefined()) return std::nullopt;
    if (v.kind == Kind::Int) return v.integer;
    if (v.kind == Kind::Bool) return v.boolean ? 1 : 0;
    fail("slice indices must be integers or None (", what, " is ", type_name(v), ")");
  };
  int64_t step = as_opt(step_v, "step").value_or(1);
  if (step == 0) fail("slice step cannot be zero");
  int64_t lower = step > 0 ? 0 : -1, upper = step > 0 ? length : length - 1;
  auto clamp = [&](std::optional<int64_t> v, int64_t fallback) {
    if (!v) return fallback;
    int64_t x = *v;
    if (x < 0) {
      x += length;
      if (x < lower) x = lower;
    } else if (x > upper) {
      x = upper;
    }
    return x;
  };
  int64_t start = clamp(as_opt(start_v, "start"), step > 0 ? lower : upper);
  int64_t stop = clamp(as_opt(stop_v, "stop"), step > 0 ? upper : lower);
  std::vector<size_t> out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) out.push_back(static_cast<size_t>(i));
  return out;
}

}  // namespace

Value get_attr(const Value& object, const std::string& name) {
  if (object.is_undefined()) fail_undefined(object);
  if (auto method = bound_method(object, name)) return *method;
  if (object.kind == Kind::Dict || object.kind == Kind::Namespace) {
    if (const Value* found = object.dict->find(name)) return *found;
  }
  return Value::undefined(object_desc(object) + " has no attribute '" + name + "'");
}

Value get_item(const Value& object, const Value& key) {
  if (object.is_undefined()) fail_undefined(object);
  if (object.kind == Kind::Dict && key.kind == Kind::String) {
    if (const Value* found = object.dict->find(key.text)) return *found;
  }
  if ((object.is_sequence() || object.kind == Kind::String) && (key.kind == Kind::Int || key.kind == Kind::Bool)) {
    int64_t index = key.kind == Kind::Int ? key.integer : key.boolean;
    if (object.kind == Kind::String) {
      std::u32string chars = decode_utf8(object.text);
      int64_t n = static_cast<int64_t>(chars.size());
      if (index < 0) index += n;
      if (index >= 0 && index < n) {
        std::string s;
        append_utf8(s, chars[static_cast<size_t>(index)]);
        return Value::from_string(s);
      }
    } else {
      int64_t n = static_cast<int64_t>(object.list->size());
      if (index < 0) index += n;
      if (index >= 0 && index < n) return (*object.list)[static_cast<size_t>(index)];
    }
    return Value::undefined(object_desc(object) + " has no element " + to_str(key));
  }
  if (key.kind == Kind::String) return get_attr(object, key.text);
  return Value::undefined(object_desc(object) + " has no element " + repr(key));
}

Value get_slice(const Value& object, const Value& start, const Value& stop, const Value& step) {
  if (object.is_undefined()) fail_undefined(object);
  if (object.kind == Kind::String) {
    std::u32string chars = decode_utf8(object.text);
    std::u32string out;
    for (size_t i : slice_positions(static_cast<int64_t>(chars.size()), start, stop, step)) out.push_back(chars[i]);
    return Value::from_string(encode_utf8(out));
  }
  if (object.is_sequence()) {
    List out;
    for (size_t i : slice_positions(static_cast<int64_t>(object.list->size()), start, stop, step)) out.push_back((*object.list)[i]);
    return object.kind == Kind::Tuple ? Value::make_tuple(std::move(out)) : Value::make_list(std::move(out));
  }
  return Value::undefined(object_desc(object) + " cannot be sliced");
}

}  // namespace moeforge::jinja
