// Public API of the Jinja engine: parse a template once, render it with a JSON context.
//
//   auto t = moeforge::jinja::Template::parse("Hello {{ name }}!", "greeting");
//   std::string s = t.render({{"name", "world"}});   // "Hello world!"
//
// Semantics follow jinja2 as transformers configures it for chat templates (trim_blocks,
// lstrip_blocks, loopcontrols, ImmutableSandboxedEnvironment, tojson/raise_exception/strftime_now
// globals). Every error -- syntax, unsupported construct, runtime -- is a moeforge::Error whose
// message starts with "<label>:<line>: ".
#pragma once

#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "chat/jinja_value.h"

namespace moeforge::jinja {

struct Node;

struct RenderOptions {
  // The moment strftime_now() formats (broken-down local time); nullopt: the current local time.
  std::optional<std::tm> now;
};

class Template {
 public:
  static Template parse(std::string_view source, std::string label = "<template>");
  // `context` must be a JSON object (or null): its keys become template variables.
  std::string render(const Json& context, const RenderOptions& options = {}) const;
  const std::string& label() const { return label_; }

 private:
  Template() = default;
  std::shared_ptr<const std::vector<std::unique_ptr<Node>>> body_;
  std::string label_;
};

}  // namespace moeforge::jinja
