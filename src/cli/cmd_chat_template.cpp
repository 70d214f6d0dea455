// `moeforge chat-template`: renders a tokenizer's chat template for a conversation, byte-for-byte as
// transformers' apply_chat_template(tokenize=False). --batch renders one conversation per JSONL line
// and prints one JSON string (or {"error": ...}) per line, for the parity tests.
#include <fstream>
#include <iostream>
#include <sstream>

#include "chat/chat_template.h"
#include "chat/jinja_value.h"
#include "cli/commands.h"
#include "common/error.h"

namespace moeforge::cli {
namespace {

struct ChatTemplateOptions {
  std::string tokenizer;
  std::string template_file;
  std::string messages;
  std::string batch;
  std::string now;
  bool add_generation_prompt = false;
  bool json = false;
};

std::string read_all(const std::string& path) {
  if (path == "-") return {std::istreambuf_iterator<char>(std::cin), {}};
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open '", path, "'");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// A conversation: [messages...] or {"messages": [...], "tools": [...], "add_generation_prompt": b, kwargs...}.
chat::ChatTemplateInputs parse_conversation(const chat::Json& doc, const ChatTemplateOptions& o, const std::string& where) {
  chat::ChatTemplateInputs in;
  in.add_generation_prompt = o.add_generation_prompt;
  if (!o.now.empty()) in.now = chat::parse_datetime(o.now);
  if (doc.is_array()) {
    in.messages = doc;
    return in;
  }
  if (!doc.is_object()) fail(where, ": expected a JSON array of messages or an object with \"messages\"");
  auto messages = doc.find("messages");
  if (messages == doc.end()) fail(where, ": missing \"messages\"");
  in.messages = *messages;
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    if (it.key() == "messages") continue;
    if (it.key() == "tools") {
      in.tools = it.value();
    } else if (it.key() == "add_generation_prompt") {
      if (!it.value().is_boolean()) fail(where, ": \"add_generation_prompt\" must be true or false");
      in.add_generation_prompt = in.add_generation_prompt || it.value().get<bool>();
    } else {
      in.extra_context[it.key()] = it.value();
    }
  }
  return in;
}

chat::Json parse_json(const std::string& text, const std::string& where) {
  try {
    return chat::Json::parse(text);
  } catch (const chat::Json::exception& e) {
    fail(where, ": invalid JSON: ", e.what());
  }
}

std::string json_string(const std::string& s) {
  jinja::JsonDumpOptions ascii;
  ascii.ensure_ascii = true;  // survives any bytes the template produced
  return jinja::dumps(jinja::Value::from_string(s), ascii);
}

int run_chat_template(const ChatTemplateOptions& o) {
  if (o.tokenizer.empty() && o.template_file.empty()) fail("chat-template needs --tokenizer DIR or --template FILE");
  if (o.messages.empty() == o.batch.empty()) fail("chat-template needs exactly one of --messages FILE and --batch FILE.jsonl");
  // --template replaces the tokenizer's template; the tokenizer then only supplies special tokens.
  chat::ChatTemplate tmpl =
      o.template_file.empty()
          ? chat::ChatTemplate::from_tokenizer_dir(o.tokenizer)
          : chat::ChatTemplate::from_string(read_all(o.template_file),
                                            o.tokenizer.empty() ? chat::Json::object() : chat::read_special_tokens(o.tokenizer),
                                            o.template_file);

  if (!o.messages.empty()) {
    std::string rendered = tmpl.render(parse_conversation(parse_json(read_all(o.messages), o.messages), o, o.messages));
    if (o.json) {
      std::cout << json_string(rendered) << "\n";
    } else {
      std::cout << rendered;
    }
    std::cout.flush();
    return 0;
  }
  std::istringstream lines(read_all(o.batch));
  std::string line;
  size_t number = 0;
  while (std::getline(lines, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    std::string where = o.batch + ":" + std::to_string(number);
    try {
      std::cout << json_string(tmpl.render(parse_conversation(parse_json(line, where), o, where))) << "\n";
    } catch (const Error& e) {
      std::cout << "{\"error\": " << json_string(e.what()) << "}\n";
    }
  }
  std::cout.flush();
  return 0;
}

CommandRegistrar registrar([](CLI::App& app) {
  auto options = std::make_shared<ChatTemplateOptions>();
  auto* sub = app.add_subcommand("chat-template", "Render a tokenizer's chat template for a conversation (as transformers does)");
  accepts_hub_id(sub->add_option("--tokenizer", options->tokenizer, "Tokenizer directory (tokenizer_config.json and/or chat_template.jinja)"));
  sub->add_option("--template", options->template_file, "Jinja template file to use instead of the tokenizer's");
  sub->add_option("--messages", options->messages,
                  "JSON file ('-' = stdin): an array of {role, content} messages, or {\"messages\": [...], \"tools\": [...], kwargs...}");
  sub->add_option("--batch", options->batch, "JSONL file: one conversation per line; prints one JSON string (or {\"error\": ...}) per line");
  sub->add_flag("--add-generation-prompt", options->add_generation_prompt, "Append the assistant turn header");
  sub->add_flag("--json", options->json, "Print the rendered text as a JSON string (--messages mode)");
  sub->add_option("--now", options->now, "Date/time strftime_now() sees: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS (default: now)");
  set_action(sub, [options] { return run_chat_template(*options); });
});

}  // namespace
}  // namespace moeforge::cli
