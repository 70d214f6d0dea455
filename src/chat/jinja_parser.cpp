// Jinja parser (see jinja_parser.h): recursive descent mirroring jinja2/parser.py.
#include "chat/jinja_parser.h"

#include <cerrno>
#include <cstdlib>

#include "chat/jinja_builtins.h"
#include "common/error.h"

namespace moeforge::jinja {
namespace {

constexpr int kMaxDepth = 200;

class Parser {
 public:
  Parser(const std::vector<Token>& tokens, const std::string& label) : toks_(tokens), label_(label) {}

  NodeList parse_all() {
    NodeList body = subparse({});
    if (cur().type != TokenType::End) error(cur().line, "unexpected '" + cur().value + "'");
    return body;
  }

 private:
  const std::vector<Token>& toks_;
  const std::string& label_;
  size_t i_ = 0;
  int depth_ = 0;

  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& parser, int line) : p(parser) {
      if (++p.depth_ > kMaxDepth) p.error(line, "template nested too deeply");
    }
    ~DepthGuard() { --p.depth_; }
  };

  const Token& cur() const { return toks_[i_]; }
  const Token& peek(size_t n = 1) const { return toks_[std::min(i_ + n, toks_.size() - 1)]; }
  void advance() {
    if (i_ + 1 < toks_.size()) ++i_;
  }

  [[noreturn]] void error(int line, const std::string& message) const { fail(label_, ":", line, ": ", message); }

  static std::string describe(const Token& t) {
    switch (t.type) {
      case TokenType::Data: return "template data";
      case TokenType::VarBegin: return "begin of print statement";
      case TokenType::VarEnd: return "end of print statement";
      case TokenType::BlockBegin: return "begin of statement block";
      case TokenType::BlockEnd: return "end of statement block";
      case TokenType::End: return "end of template";
      case TokenType::String: return "string";
      default: return t.value;
    }
  }

  bool is_op(const char* op) const { return cur().type == TokenType::Operator && cur().value == op; }
  bool is_name(const char* name) const { return cur().type == TokenType::Name && cur().value == name; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    advance();
    return true;
  }
  bool skip_name(const char* name) {
    if (!is_name(name)) return false;
    advance();
    return true;
  }
  void expect_op(const char* op) {
    if (!skip_op(op)) error(cur().line, cat("expected '", op, "', got '", describe(cur()), "'"));
  }
  std::string expect_name() {
    if (cur().type != TokenType::Name) error(cur().line, "expected a name, got '" + describe(cur()) + "'");
    std::string name = cur().value;
    advance();
    return name;
  }
  void expect_block_end() {
    if (cur().type != TokenType::BlockEnd) error(cur().line, "expected end of statement block, got '" + describe(cur()) + "'");
    advance();
  }

  // ---- statements ------------------------------------------------------------------------------

  // Parses until a block tag whose name is in `end_names` (left unconsumed, positioned on the name).
  NodeList subparse(const std::vector<std::string>& end_names) {
    NodeList body;
    while (true) {
      const Token& t = cur();
      if (t.type == TokenType::End) {
        if (!end_names.empty()) error(t.line, "unexpected end of template, expected '" + end_names.front() + "'");
        return body;
      }
      if (t.type == TokenType::Data) {
        auto node = std::make_unique<Node>(NodeKind::Text, t.line);
        node->text = t.value;
        body.push_back(std::move(node));
        advance();
      } else if (t.type == TokenType::VarBegin) {
        advance();
        auto node = std::make_unique<Node>(NodeKind::Output, t.line);
        node->expr = parse_tuple(true, {}, false);
        if (cur().type != TokenType::VarEnd) error(cur().line, "expected end of print statement, got '" + describe(cur()) + "'");
        advance();
        body.push_back(std::move(node));
      } else if (t.type == TokenType::BlockBegin) {
        advance();
        if (cur().type != TokenType::Name) error(cur().line, "tag name expected");
        for (const auto& end : end_names) if (cur().value == end) return body;
        body.push_back(parse_statement());
      } else {
        error(t.line, "unexpected '" + describe(t) + "'");
      }
    }
  }

  NodePtr parse_statement() {
    DepthGuard guard(*this, cur().line);
    const std::string tag = cur().value;
    int line = cur().line;
    if (tag == "if") return parse_if();
    if (tag == "for") return parse_for();
    if (tag == "set") return parse_set();
    if (tag == "macro") return parse_macro();
    if (tag == "call") return parse_call_block();
    if (tag == "filter") return parse_filter_block();
    if (tag == "with") return parse_with();
    if (tag == "generation") {  // transformers' assistant-mask extension: renders its body as is
      advance();
      expect_block_end();
      auto node = std::make_unique<Node>(NodeKind::Scope, line);
      node->body = subparse({"endgeneration"});
      advance();
      expect_block_end();
      return node;
    }
    if (tag == "break" || tag == "continue") {
      advance();
      expect_block_end();
      return std::make_unique<Node>(tag == "break" ? NodeKind::Break : NodeKind::Continue, line);
    }
    static const char* const known_unsupported[] = {"include", "import", "from", "extends", "block", "do", "autoescape", "trans"};
    for (const char* name : known_unsupported) {
      if (tag == name) error(line, "unsupported tag '" + tag + "' (not available in chat templates)");
    }
    error(line, "unknown tag '" + tag + "'");
  }

  NodePtr parse_if() {
    int line = cur().line;
    advance();  // if / elif
    auto node = std::make_unique<Node>(NodeKind::If, line);
    node->expr = parse_tuple(false, {}, false);
    expect_block_end();
    node->body = subparse({"elif", "else", "endif"});
    if (is_name("elif")) {
      node->else_body.push_back(parse_if());
      return node;
    }
    if (skip_name("else")) {
      expect_block_end();
      node->else_body = subparse({"endif"});
    }
    advance();  // endif
    expect_block_end();
    return node;
  }

  std::vector<std::string> parse_target_names(const char* stop) {
    std::vector<std::string> names;
    bool parens = skip_op("(");
    while (true) {
      names.push_back(expect_name());
      if (!skip_op(",")) break;
      if (parens && is_op(")")) break;
      if (stop && is_name(stop)) break;
    }
    if (parens) expect_op(")");
    return names;
  }

  NodePtr parse_for() {
    int line = cur().line;
    advance();
    auto node = std::make_unique<Node>(NodeKind::For, line);
    node->targets = parse_target_names("in");
    if (!skip_name("in")) error(cur().line, "expected 'in', got '" + describe(cur()) + "'");
    node->expr = parse_tuple(false, {"recursive"}, false);
    if (skip_name("if")) node->filter = parse_expression(true);
    if (is_name("recursive")) error(cur().line, "unsupported: recursive for loops");
    expect_block_end();
    node->body = subparse({"endfor", "else"});
    if (skip_name("else")) {
      expect_block_end();
      node->else_body = subparse({"endfor"});
    }
    advance();
    expect_block_end();
    return node;
  }

  NodePtr parse_set() {
    int line = cur().line;
    advance();
    std::vector<std::string> targets;
    std::string attribute;
    if (cur().type == TokenType::Name && peek().type == TokenType::Operator && peek().value == ".") {
      targets.push_back(expect_name());
      advance();
      attribute = expect_name();
    } else {
      targets = parse_target_names(nullptr);
    }
    if (skip_op("=")) {
      auto node = std::make_unique<Node>(NodeKind::Set, line);
      node->targets = std::move(targets);
      node->text = attribute;
      node->expr = parse_tuple(true, {}, false);
      expect_block_end();
      return node;
    }
    if (targets.size() != 1) error(line, "block set needs a single target name");
    auto node = std::make_unique<Node>(NodeKind::SetBlock, line);
    node->targets = std::move(targets);
    node->text = attribute;
    if (is_op("|")) node->filter = parse_filter_chain(std::make_unique<Expr>(ExprKind::Name, line));
    expect_block_end();
    node->body = subparse({"endset"});
    advance();
    expect_block_end();
    return node;
  }

  void parse_signature(std::vector<MacroParam>& params) {
    expect_op("(");
    while (!is_op(")")) {
      if (!params.empty()) expect_op(",");
      if (is_op(")")) break;
      MacroParam param;
      param.name = expect_name();
      if (skip_op("=")) param.default_value = parse_expression(true);
      params.push_back(std::move(param));
    }
    expect_op(")");
  }

  NodePtr parse_macro() {
    int line = cur().line;
    advance();
    auto node = std::make_unique<Node>(NodeKind::Macro, line);
    node->text = expect_name();
    parse_signature(node->params);
    expect_block_end();
    node->body = subparse({"endmacro"});
    advance();
    expect_block_end();
    return node;
  }

  NodePtr parse_call_block() {
    int line = cur().line;
    advance();
    auto node = std::make_unique<Node>(NodeKind::CallBlock, line);
    if (is_op("(")) parse_signature(node->params);
    node->expr = parse_expression(true);
    if (node->expr->kind != ExprKind::Call) error(line, "expected call");
    expect_block_end();
    node->body = subparse({"endcall"});
    advance();
    expect_block_end();
    return node;
  }

  NodePtr parse_filter_block() {
    int line = cur().line;
    advance();
    auto node = std::make_unique<Node>(NodeKind::FilterBlock, line);
    node->filter = parse_filter_chain(std::make_unique<Expr>(ExprKind::Name, line), /*leading_pipe=*/false);
    expect_block_end();
    node->body = subparse({"endfilter"});
    advance();
    expect_block_end();
    return node;
  }

  NodePtr parse_with() {
    int line = cur().line;
    advance();
    auto node = std::make_unique<Node>(NodeKind::With, line);
    while (cur().type != TokenType::BlockEnd) {
      if (!node->params.empty()) expect_op(",");
      MacroParam p;
      p.name = expect_name();
      expect_op("=");
      p.default_value = parse_expression(true);
      node->params.push_back(std::move(p));
    }
    expect_block_end();
    node->body = subparse({"endwith"});
    advance();
    expect_block_end();
    return node;
  }

  // ---- expressions -----------------------------------------------------------------------------

  bool is_tuple_end(const std::vector<std::string>& extra_end) const {
    const Token& t = cur();
    if (t.type == TokenType::VarEnd || t.type == TokenType::BlockEnd || t.type == TokenType::End) return true;
    if (t.type == TokenType::Operator && t.value == ")") return true;
    if (t.type == TokenType::Name) for (const auto& e : extra_end) if (t.value == e) return true;
    return false;
  }

  ExprPtr parse_tuple(bool with_condexpr, const std::vector<std::string>& extra_end, bool explicit_parens) {
    int line = cur().line;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      items.push_back(with_condexpr ? parse_expression(true) : parse_or());
      if (is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (items.size() == 1) return std::move(items[0]);
      if (!explicit_parens) error(cur().line, "expected an expression, got '" + describe(cur()) + "'");
    }
    auto node = std::make_unique<Expr>(ExprKind::Tuple, line);
    node->items = std::move(items);
    return node;
  }

  ExprPtr parse_expression(bool with_condexpr) {
    DepthGuard guard(*this, cur().line);
    if (!with_condexpr) return parse_or();
    ExprPtr expr = parse_or();
    while (is_name("if")) {
      int line = cur().line;
      advance();
      ExprPtr cond = parse_or();
      ExprPtr otherwise;
      if (skip_name("else")) otherwise = parse_expression(true);
      auto node = std::make_unique<Expr>(ExprKind::Conditional, line);
      node->a = std::move(expr);
      node->b = std::move(cond);
      node->c = std::move(otherwise);
      expr = std::move(node);
    }
    return expr;
  }

  ExprPtr binary(const std::string& op, ExprPtr left, ExprPtr right, int line) {
    auto node = std::make_unique<Expr>(ExprKind::Binary, line);
    node->name = op;
    node->a = std::move(left);
    node->b = std::move(right);
    return node;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      int line = cur().line;
      advance();
      left = binary("or", std::move(left), parse_and(), line);
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      int line = cur().line;
      advance();
      left = binary("and", std::move(left), parse_not(), line);
    }
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      DepthGuard guard(*this, cur().line);
      int line = cur().line;
      advance();
      auto node = std::make_unique<Expr>(ExprKind::Unary, line);
      node->name = "not";
      node->a = parse_not();
      return node;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    int line = cur().line;
    ExprPtr expr = parse_math1();
    // Chained comparisons a < b < c become (a < b) and (b < c) -- evaluated without re-evaluating b
    // is not needed for side-effect-free templates, so we keep a simple left-fold of `and`s.
    std::vector<std::pair<std::string, ExprPtr>> ops;
    while (true) {
      std::string op;
      if (cur().type == TokenType::Operator &&
          (cur().value == "==" || cur().value == "!=" || cur().value == "<" || cur().value == "<=" ||
           cur().value == ">" || cur().value == ">=")) {
        op = cur().value;
        advance();
      } else if (is_name("in")) {
        op = "in";
        advance();
      } else if (is_name("not") && peek().type == TokenType::Name && peek().value == "in") {
        op = "not in";
        advance();
        advance();
      } else {
        break;
      }
      ops.emplace_back(op, parse_math1());
    }
    if (ops.empty()) return expr;
    if (ops.size() == 1) return binary(ops[0].first, std::move(expr), std::move(ops[0].second), line);
    error(line, "unsupported: chained comparisons");
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      std::string op = cur().value;
      int line = cur().line;
      advance();
      left = binary(op, std::move(left), parse_concat(), line);
    }
    return left;
  }

  ExprPtr parse_concat() {
    ExprPtr left = parse_math2();
    while (is_op("~")) {
      int line = cur().line;
      advance();
      left = binary("~", std::move(left), parse_math2(), line);
    }
    return left;
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = cur().value;
      int line = cur().line;
      advance();
      left = binary(op, std::move(left), parse_pow(), line);
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op("**")) {
      int line = cur().line;
      advance();
      left = binary("**", std::move(left), parse_unary(true), line);
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(*this, cur().line);
    int line = cur().line;
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      std::string op = cur().value;
      advance();
      node = std::make_unique<Expr>(ExprKind::Unary, line);
      node->name = op;
      node->a = parse_unary(false);
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    int line = t.line;
    if (t.type == TokenType::Name) {
      std::string name = t.value;
      advance();
      if (name == "true" || name == "True" || name == "false" || name == "False") {
        auto node = std::make_unique<Expr>(ExprKind::Literal, line);
        node->value = Value::from_bool(name == "true" || name == "True");
        return node;
      }
      if (name == "none" || name == "None") {
        auto node = std::make_unique<Expr>(ExprKind::Literal, line);
        node->value = Value::none();
        return node;
      }
      auto node = std::make_unique<Expr>(ExprKind::Name, line);
      node->name = name;
      return node;
    }
    if (t.type == TokenType::String) {
      std::string text;
      while (cur().type == TokenType::String) {
        text += cur().value;
        advance();
      }
      auto node = std::make_unique<Expr>(ExprKind::Literal, line);
      node->value = Value::from_string(std::move(text));
      return node;
    }
    if (t.type == TokenType::Integer || t.type == TokenType::Float) {
      auto node = std::make_unique<Expr>(ExprKind::Literal, line);
      if (t.type == TokenType::Integer) {
        errno = 0;
        long long v = std::strtoll(t.value.c_str(), nullptr, 10);
        if (errno == ERANGE) {
          node->value = Value::from_float(std::strtod(t.value.c_str(), nullptr));
        } else {
          node->value = Value::from_int(v);
        }
      } else {
        node->value = Value::from_float(std::strtod(t.value.c_str(), nullptr));
      }
      advance();
      return node;
    }
    if (is_op("(")) {
      advance();
      ExprPtr inner = parse_tuple(true, {}, true);
      expect_op(")");
      return inner;
    }
    if (is_op("[")) {
      advance();
      auto node = std::make_unique<Expr>(ExprKind::List, line);
      while (!is_op("]")) {
        if (!node->items.empty()) expect_op(",");
        if (is_op("]")) break;
        node->items.push_back(parse_expression(true));
      }
      expect_op("]");
      return node;
    }
    if (is_op("{")) {
      advance();
      auto node = std::make_unique<Expr>(ExprKind::DictLit, line);
      while (!is_op("}")) {
        if (!node->items.empty()) expect_op(",");
        if (is_op("}")) break;
        node->keys.push_back(parse_expression(true));
        expect_op(":");
        node->items.push_back(parse_expression(true));
      }
      expect_op("}");
      return node;
    }
    error(line, "unexpected '" + describe(t) + "'");
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        node = parse_filter_chain(std::move(node));
      } else if (is_name("is")) {
        node = parse_test(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr object) {
    int line = cur().line;
    if (skip_op(".")) {
      if (cur().type == TokenType::Name) {
        auto node = std::make_unique<Expr>(ExprKind::GetAttr, line);
        node->a = std::move(object);
        node->name = cur().value;
        advance();
        return node;
      }
      if (cur().type != TokenType::Integer) error(cur().line, "expected name or number");
      auto index = std::make_unique<Expr>(ExprKind::Literal, line);
      index->value = Value::from_int(std::strtoll(cur().value.c_str(), nullptr, 10));
      advance();
      auto node = std::make_unique<Expr>(ExprKind::GetItem, line);
      node->a = std::move(object);
      node->b = std::move(index);
      return node;
    }
    expect_op("[");
    std::vector<ExprPtr> args;
    while (!is_op("]")) {
      if (!args.empty()) expect_op(",");
      args.push_back(parse_subscribed());
    }
    expect_op("]");
    if (args.empty()) error(line, "expected subscript expression");
    ExprPtr arg;
    if (args.size() == 1) {
      arg = std::move(args[0]);
    } else {
      arg = std::make_unique<Expr>(ExprKind::Tuple, line);
      arg->items = std::move(args);
    }
    if (arg->kind == ExprKind::Slice) {
      arg->a = std::move(object);
      return arg;
    }
    auto node = std::make_unique<Expr>(ExprKind::GetItem, line);
    node->a = std::move(object);
    node->b = std::move(arg);
    return node;
  }

  // Returns an expression or a Slice (object filled in by the caller).
  ExprPtr parse_subscribed() {
    int line = cur().line;
    ExprPtr start;
    if (!is_op(":")) {
      ExprPtr expr = parse_expression(true);
      if (!is_op(":")) return expr;
      start = std::move(expr);
    }
    advance();  // ':'
    auto slice = std::make_unique<Expr>(ExprKind::Slice, line);
    ExprPtr stop, step;
    if (!is_op(":") && !is_op("]") && !is_op(",")) stop = parse_expression(true);
    if (skip_op(":")) {
      if (!is_op("]") && !is_op(",")) step = parse_expression(true);
    }
    slice->items.push_back(std::move(start));
    slice->items.push_back(std::move(stop));
    slice->items.push_back(std::move(step));
    return slice;
  }

  void parse_call_args(std::vector<Argument>& args) {
    expect_op("(");
    bool seen_keyword = false;
    while (!is_op(")")) {
      if (!args.empty()) expect_op(",");
      if (is_op(")")) break;
      if (is_op("*") || is_op("**")) error(cur().line, "unsupported: *args / **kwargs in calls");
      Argument arg;
      if (cur().type == TokenType::Name && peek().type == TokenType::Operator && peek().value == "=") {
        arg.name = cur().value;
        advance();
        advance();
        seen_keyword = true;
      } else if (seen_keyword) {
        error(cur().line, "invalid syntax for function call expression (positional argument after keyword)");
      }
      arg.value = parse_expression(true);
      args.push_back(std::move(arg));
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto node = std::make_unique<Expr>(ExprKind::Call, cur().line);
    node->a = std::move(callee);
    parse_call_args(node->args);
    return node;
  }

  std::string parse_dotted_name() {
    std::string name = expect_name();
    while (is_op(".") && peek().type == TokenType::Name) {
      advance();
      name += "." + expect_name();
    }
    return name;
  }

  ExprPtr parse_filter_chain(ExprPtr node, bool leading_pipe = true) {
    bool first = true;
    while (is_op("|") || (first && !leading_pipe)) {
      if (!(first && !leading_pipe)) advance();
      first = false;
      int line = cur().line;
      std::string name = parse_dotted_name();
      if (!is_known_filter(name)) error(line, "unsupported filter '" + name + "'");
      auto filter = std::make_unique<Expr>(ExprKind::Filter, line);
      filter->name = name;
      filter->a = std::move(node);
      if (is_op("(")) parse_call_args(filter->args);
      node = std::move(filter);
    }
    return node;
  }

  ExprPtr parse_test(ExprPtr node) {
    int line = cur().line;
    advance();  // is
    bool negated = skip_name("not");
    std::string name = parse_dotted_name();
    if (!is_known_test(name)) error(line, "unsupported test '" + name + "'");
    auto test = std::make_unique<Expr>(ExprKind::Test, line);
    test->name = name;
    test->negated = negated;
    test->a = std::move(node);
    if (is_op("(")) {
      parse_call_args(test->args);
    } else if ((cur().type == TokenType::Name || cur().type == TokenType::String || cur().type == TokenType::Integer ||
                cur().type == TokenType::Float || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) error(cur().line, "You cannot chain multiple tests with is");
      Argument arg;
      arg.value = parse_postfix(parse_primary());
      test->args.push_back(std::move(arg));
    }
    return test;
  }
};

}  // namespace

NodeList parse(const std::vector<Token>& tokens, const std::string& label) {
  Parser parser(tokens, label);
  return parser.parse_all();
}

}  // namespace moeforge::jinja
