// Jinja renderer: walks the statement tree with jinja2's scoping rules (a fresh scope per loop
// iteration and per macro call; `if` does not scope; macros see top-level variables) and
// implements Template::parse/render (see jinja_template.h).
#include <unordered_map>

#include "chat/jinja_ast.h"
#include "chat/jinja_builtins.h"
#include "chat/jinja_lexer.h"
#include "chat/jinja_parser.h"
#include "chat/jinja_template.h"
#include "common/error.h"

namespace moeforge::jinja {
namespace {

constexpr int kMaxCallDepth = 100;
constexpr size_t kMaxOutput = size_t{256} << 20;

// An Error that already names the template and line.
class LocatedError : public Error {
 public:
  using Error::Error;
};

struct Scope {
  std::unordered_map<std::string, Value> vars;
  Scope* parent = nullptr;
};

enum class Flow { Normal, Break, Continue };

class Renderer {
 public:
  Renderer(const std::string& label, const Json& context, const RenderOptions& options) : label_(label) {
    for (auto& [k, v] : make_globals(options.now).entries) globals_.vars[k] = v;
    if (context.is_object()) {
      for (auto it = context.begin(); it != context.end(); ++it) globals_.vars[it.key()] = from_json(it.value());
    } else if (!context.is_null()) {
      fail(label, ": render context must be a JSON object");
    }
    root_.parent = &globals_;
  }

  std::string run(const NodeList& body) {
    std::string out;
    Flow flow = render_list(body, root_, out);
    if (flow != Flow::Normal) fail(label_, ": 'break'/'continue' outside of a loop");
    return out;
  }

 private:
  const std::string& label_;
  Scope globals_;
  Scope root_;
  int call_depth_ = 0;

  [[noreturn]] void located(int line, const std::string& message) const {
    throw LocatedError(cat(label_, ":", line, ": ", message));
  }

  template <typename F>
  auto at_line(int line, F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (const LocatedError&) {
      throw;
    } catch (const std::bad_alloc&) {
      located(line, "out of memory while rendering");
    } catch (const std::exception& e) {
      located(line, e.what());
    }
  }

  static Value* find_var(const std::string& name, Scope& scope) {
    for (Scope* s = &scope; s; s = s->parent) {
      auto it = s->vars.find(name);
      if (it != s->vars.end()) return &it->second;
    }
    return nullptr;
  }

  // ---- statements ------------------------------------------------------------------------------

  Flow render_list(const NodeList& nodes, Scope& scope, std::string& out) {
    for (const auto& node : nodes) {
      Flow flow = render_node(*node, scope, out);
      if (flow != Flow::Normal) return flow;
      if (out.size() > kMaxOutput) located(node->line, "rendered output too large");
    }
    return Flow::Normal;
  }

  Flow render_node(const Node& node, Scope& scope, std::string& out) {
    switch (node.kind) {
      case NodeKind::Text: out += node.text; return Flow::Normal;
      case NodeKind::Output: {
        Value v = eval(*node.expr, scope);
        out += to_str(v);
        return Flow::Normal;
      }
      case NodeKind::If: {
        bool cond = truthy(eval(*node.expr, scope));
        return render_list(cond ? node.body : node.else_body, scope, out);
      }
      case NodeKind::For: return render_for(node, scope, out);
      case NodeKind::Set: {
        Value v = eval(*node.expr, scope);
        at_line(node.line, [&] { assign(node, std::move(v), scope); return 0; });
        return Flow::Normal;
      }
      case NodeKind::SetBlock: {
        std::string body;
        Scope inner{{}, &scope};
        if (render_list(node.body, inner, body) != Flow::Normal) located(node.line, "'break'/'continue' outside of a loop");
        Value v = Value::from_string(body);
        if (node.filter) v = apply_filter_chain(*node.filter, std::move(v), scope);
        at_line(node.line, [&] { assign(node, std::move(v), scope); return 0; });
        return Flow::Normal;
      }
      case NodeKind::Macro: {
        const Node* macro = &node;
        scope.vars[node.text] = Value::make_callable(node.text, [this, macro](CallArgs& args) { return call_macro(*macro, args); });
        return Flow::Normal;
      }
      case NodeKind::CallBlock: {
        const Node* block = &node;
        Scope* call_site = &scope;
        Value caller = Value::make_callable("caller", [this, block, call_site](CallArgs& args) {
          Scope inner{{}, call_site};
          bind_params(*block, "caller", args, inner);
          std::string body;
          if (render_list(block->body, inner, body) != Flow::Normal) fail("'break'/'continue' outside of a loop");
          return Value::from_string(body);
        });
        const Expr& call = *node.expr;
        Value callee = eval(*call.a, scope);
        CallArgs args = eval_args(call.args, scope);
        args.keyword.emplace_back("caller", caller);
        out += to_str(invoke(callee, args, call));
        return Flow::Normal;
      }
      case NodeKind::FilterBlock: {
        std::string body;
        Flow flow = render_list(node.body, scope, body);
        out += to_str(apply_filter_chain(*node.filter, Value::from_string(body), scope));
        return flow;
      }
      case NodeKind::With: {
        Scope inner{{}, &scope};
        for (const auto& p : node.params) inner.vars[p.name] = eval(*p.default_value, scope);
        return render_list(node.body, inner, out);
      }
      case NodeKind::Scope: return render_list(node.body, scope, out);
      case NodeKind::Break: return Flow::Break;
      case NodeKind::Continue: return Flow::Continue;
    }
    return Flow::Normal;
  }

  void assign(const Node& node, Value v, Scope& scope) {
    if (!node.text.empty()) {  // {% set ns.attr = ... %}
      Value* target = find_var(node.targets[0], scope);
      if (!target || target->kind != Kind::Namespace) fail("can only assign attributes of namespace() objects ('", node.targets[0], "')");
      if (node.text[0] == '_') fail("Chat templates cannot store underscore-prefixed attributes on a namespace");
      target->dict->set(node.text, std::move(v));
      return;
    }
    if (node.targets.size() == 1) {
      scope.vars[node.targets[0]] = std::move(v);
      return;
    }
    List items = iterate(v);
    if (items.size() != node.targets.size()) {
      fail(items.size() < node.targets.size() ? "not enough" : "too many", " values to unpack (expected ", node.targets.size(), ", got ", items.size(), ")");
    }
    for (size_t i = 0; i < items.size(); ++i) scope.vars[node.targets[i]] = items[i];
  }

  void bind_targets(const Node& node, const Value& item, Scope& scope) {
    if (node.targets.size() == 1) {
      scope.vars[node.targets[0]] = item;
      return;
    }
    List parts = at_line(node.line, [&] { return iterate(item); });
    if (parts.size() != node.targets.size()) {
      located(node.line, cat(parts.size() < node.targets.size() ? "not enough" : "too many", " values to unpack (expected ",
                             node.targets.size(), ", got ", parts.size(), ")"));
    }
    for (size_t i = 0; i < parts.size(); ++i) scope.vars[node.targets[i]] = parts[i];
  }

  Flow render_for(const Node& node, Scope& scope, std::string& out) {
    Value iterable = eval(*node.expr, scope);
    List items = at_line(node.line, [&] { return iterate(iterable); });
    if (node.filter) {
      List kept;
      for (const auto& item : items) {
        Scope probe{{}, &scope};
        bind_targets(node, item, probe);
        if (truthy(eval(*node.filter, probe))) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) return render_list(node.else_body, scope, out);
    const int64_t n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
      Scope inner{{}, &scope};
      bind_targets(node, items[static_cast<size_t>(i)], inner);
      Dict loop;
      loop.set("index", Value::from_int(i + 1));
      loop.set("index0", Value::from_int(i));
      loop.set("revindex", Value::from_int(n - i));
      loop.set("revindex0", Value::from_int(n - i - 1));
      loop.set("first", Value::from_bool(i == 0));
      loop.set("last", Value::from_bool(i == n - 1));
      loop.set("length", Value::from_int(n));
      loop.set("depth", Value::from_int(1));
      loop.set("depth0", Value::from_int(0));
      loop.set("previtem", i > 0 ? items[static_cast<size_t>(i - 1)] : Value::undefined("there is no previous item"));
      loop.set("nextitem", i + 1 < n ? items[static_cast<size_t>(i + 1)] : Value::undefined("there is no next item"));
      loop.set("cycle", Value::make_callable("loop.cycle", [i](CallArgs& a) {
        if (a.positional.empty()) fail("no items for cycling given");
        return a.positional[static_cast<size_t>(i) % a.positional.size()];
      }));
      inner.vars["loop"] = Value::make_namespace(std::move(loop));
      Flow flow = render_list(node.body, inner, out);
      if (flow == Flow::Break) break;
    }
    return Flow::Normal;
  }

  void bind_params(const Node& node, const std::string& name, CallArgs& args, Scope& scope) {
    if (args.positional.size() > node.params.size()) {
      fail("macro '", name, "' takes not more than ", node.params.size(), " argument(s)");
    }
    std::vector<bool> bound(node.params.size(), false);
    for (size_t i = 0; i < args.positional.size(); ++i) {
      scope.vars[node.params[i].name] = args.positional[i];
      bound[i] = true;
    }
    for (auto& [key, value] : args.keyword) {
      if (key == "caller") {
        scope.vars["caller"] = value;
        continue;
      }
      size_t i = 0;
      while (i < node.params.size() && node.params[i].name != key) ++i;
      if (i == node.params.size()) fail("macro '", name, "' takes no keyword argument '", key, "'");
      if (bound[i]) fail("macro '", name, "' got multiple values for argument '", key, "'");
      scope.vars[key] = value;
      bound[i] = true;
    }
    for (size_t i = 0; i < node.params.size(); ++i) {
      if (bound[i]) continue;
      const auto& p = node.params[i];
      scope.vars[p.name] = p.default_value ? eval(*p.default_value, scope)
                                           : Value::undefined("parameter '" + p.name + "' was not provided");
    }
  }

  Value call_macro(const Node& macro, CallArgs& args) {
    if (call_depth_ >= kMaxCallDepth) fail("maximum macro recursion depth (", kMaxCallDepth, ") exceeded");
    ++call_depth_;
    struct Restore {
      int& d;
      ~Restore() { --d; }
    } restore{call_depth_};
    Scope scope{{}, &root_};
    bind_params(macro, macro.text, args, scope);
    std::string out;
    if (render_list(macro.body, scope, out) != Flow::Normal) fail("'break'/'continue' outside of a loop");
    return Value::from_string(out);
  }

  // ---- expressions -----------------------------------------------------------------------------

  CallArgs eval_args(const std::vector<Argument>& args, Scope& scope) {
    CallArgs out;
    for (const auto& arg : args) {
      Value v = eval(*arg.value, scope);
      if (arg.name.empty()) {
        out.positional.push_back(std::move(v));
      } else {
        out.keyword.emplace_back(arg.name, std::move(v));
      }
    }
    return out;
  }

  Value invoke(const Value& callee, CallArgs& args, const Expr& call) {
    if (callee.kind != Kind::Callable) {
      std::string what = call.a->kind == ExprKind::Name ? "unknown function '" + call.a->name + "'"
                         : call.a->kind == ExprKind::GetAttr ? "unknown method '" + call.a->name + "'"
                                                             : "value is not callable";
      if (callee.is_undefined() && !callee.text.empty()) what += " (" + callee.text + ")";
      else if (!callee.is_undefined()) what += " ('" + type_name(callee) + "' object is not callable)";
      located(call.line, what);
    }
    return at_line(call.line, [&] { return callee.callable->fn(args); });
  }

  Value apply_filter_chain(const Expr& filter, Value input, Scope& scope) {
    // The chain's innermost operand is a placeholder Name("") standing for `input`.
    Scope inner{{}, &scope};
    inner.vars[""] = std::move(input);
    return eval(filter, inner);
  }

  Value eval(const Expr& e, Scope& scope) {
    switch (e.kind) {
      case ExprKind::Literal: return e.value;
      case ExprKind::Name: {
        if (Value* v = find_var(e.name, scope)) return *v;
        return Value::undefined("'" + e.name + "' is undefined");
      }
      case ExprKind::List:
      case ExprKind::Tuple: {
        List items;
        for (const auto& item : e.items) items.push_back(eval(*item, scope));
        return e.kind == ExprKind::List ? Value::make_list(std::move(items)) : Value::make_tuple(std::move(items));
      }
      case ExprKind::DictLit: {
        Dict dict;
        for (size_t i = 0; i < e.items.size(); ++i) {
          Value key = eval(*e.keys[i], scope);
          if (key.kind != Kind::String) located(e.line, "unsupported: dict literal keys must be strings");
          dict.set(key.text, eval(*e.items[i], scope));
        }
        return Value::make_dict(std::move(dict));
      }
      case ExprKind::GetAttr: {
        Value object = eval(*e.a, scope);
        return at_line(e.line, [&] { return get_attr(object, e.name); });
      }
      case ExprKind::GetItem: {
        Value object = eval(*e.a, scope);
        Value key = eval(*e.b, scope);
        return at_line(e.line, [&] { return get_item(object, key); });
      }
      case ExprKind::Slice: {
        Value object = eval(*e.a, scope);
        Value bounds[3];
        for (int i = 0; i < 3; ++i) bounds[i] = e.items[i] ? eval(*e.items[i], scope) : Value::none();
        return at_line(e.line, [&] { return get_slice(object, bounds[0], bounds[1], bounds[2]); });
      }
      case ExprKind::Call: {
        Value callee = eval(*e.a, scope);
        CallArgs args = eval_args(e.args, scope);
        return invoke(callee, args, e);
      }
      case ExprKind::Filter: {
        Value input = eval(*e.a, scope);
        CallArgs args = eval_args(e.args, scope);
        return at_line(e.line, [&] { return apply_filter(e.name, input, args); });
      }
      case ExprKind::Test: {
        Value input = eval(*e.a, scope);
        CallArgs args = eval_args(e.args, scope);
        bool result = at_line(e.line, [&] { return apply_test(e.name, input, args); });
        return Value::from_bool(result != e.negated);
      }
      case ExprKind::Unary: {
        Value v = eval(*e.a, scope);
        return at_line(e.line, [&] { return unary_op(e.name, v); });
      }
      case ExprKind::Binary: {
        Value left = eval(*e.a, scope);
        if (e.name == "and") return truthy(left) ? eval(*e.b, scope) : left;
        if (e.name == "or") return truthy(left) ? left : eval(*e.b, scope);
        Value right = eval(*e.b, scope);
        return at_line(e.line, [&] { return binary_op(e.name, left, right); });
      }
      case ExprKind::Conditional: {
        if (truthy(eval(*e.b, scope))) return eval(*e.a, scope);
        return e.c ? eval(*e.c, scope) : Value::undefined("the inline if-expression evaluated to false and no else section was defined");
      }
    }
    return Value::undefined();
  }
};

}  // namespace

Template Template::parse(std::string_view source, std::string label) {
  Template t;
  t.label_ = std::move(label);
  std::vector<Token> tokens = tokenize(source, t.label_);
  t.body_ = std::make_shared<const NodeList>(jinja::parse(tokens, t.label_));
  return t;
}

std::string Template::render(const Json& context, const RenderOptions& options) const {
  Renderer renderer(label_, context, options);
  try {
    return renderer.run(*body_);
  } catch (const LocatedError& e) {
    throw Error(e.what());
  }
}

}  // namespace moeforge::jinja
