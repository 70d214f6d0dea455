// Jinja syntax tree: expressions (Expr) and statements (Node) produced by jinja_parser and walked
// by jinja_renderer. Plain structs; every node carries its source line for error messages.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/jinja_value.h"

namespace moeforge::jinja {

struct Expr;
struct Node;
using ExprPtr = std::unique_ptr<Expr>;
using NodePtr = std::unique_ptr<Node>;
using NodeList = std::vector<NodePtr>;

enum class ExprKind {
  Literal,    // value
  Name,       // name
  List,       // items
  Tuple,      // items
  DictLit,    // items as key/value pairs (keys[i], items[i])
  GetAttr,    // object . name
  GetItem,    // object [ index ]
  Slice,      // object [ start : stop : step ] (any may be null)
  Call,       // callee ( args )
  Filter,     // object | name ( args )
  Test,       // object is [not] name ( args )
  Unary,      // op: "not", "-", "+"
  Binary,     // op: + - * / // % ** ~ == != < <= > >= in "not in" and or
  Conditional // a if cond else b
};

struct Argument {
  std::string name;  // empty: positional
  ExprPtr value;
};

struct Expr {
  ExprKind kind;
  int line = 0;
  Value value;                 // Literal
  std::string name;            // Name, GetAttr attribute, Filter/Test name, Unary/Binary operator
  bool negated = false;        // Test: `is not`
  ExprPtr a, b, c;             // operands: object/left/true-branch, index/right/condition, step/else
  std::vector<ExprPtr> items;  // List/Tuple/Dict values, Slice (start, stop, step)
  std::vector<ExprPtr> keys;   // DictLit keys
  std::vector<Argument> args;  // Call/Filter/Test arguments
  Expr(ExprKind k, int l) : kind(k), line(l) {}
};

enum class NodeKind { Text, Output, If, For, Set, SetBlock, Macro, CallBlock, FilterBlock, With, Break, Continue, Scope };

struct MacroParam {
  std::string name;
  ExprPtr default_value;  // may be null
};

struct Node {
  NodeKind kind;
  int line = 0;
  std::string text;                     // Text; Macro name; Set/SetBlock: namespace attribute (ns.attr)
  ExprPtr expr;                         // Output, If condition, For iterable, Set value, CallBlock call
  ExprPtr filter;                       // For `if` filter; FilterBlock / SetBlock filter chain (applied to a Name placeholder)
  std::vector<std::string> targets;     // For/Set target names (more than one: tuple unpacking)
  NodeList body;                        // If-true / loop / macro / call / filter / set-block / with body
  NodeList else_body;                   // If-else (elif chains nest) / for-else
  std::vector<MacroParam> params;       // Macro; CallBlock caller params; With (name = value) pairs
  Node(NodeKind k, int l) : kind(k), line(l) {}
};

}  // namespace moeforge::jinja
