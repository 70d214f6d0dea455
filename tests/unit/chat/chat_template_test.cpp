// ChatTemplate unit tests: loading templates from tokenizer directories (config string, named list,
// chat_template.jinja), transformers' input preparation, and renders of the real Qwen3 / Llama 3
// templates in shared/data (expected strings produced by transformers' apply_chat_template).
#include <gtest/gtest.h>

#include "chat/chat_template.h"
#include "common/error.h"
#include "test_util.h"

namespace moeforge::chat {
namespace {

using test::TempDir;
using test::write_text_file;

std::string tokenizer_dir(const char* name) { return (test::shared_data_dir() / "tokenizers" / name).string(); }

Json conversation() {
  return Json::parse(R"([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                         {"role": "assistant", "content": "<think>\nwave\n</think>\n\nHello!"}])");
}

TEST(ChatTemplate, RendersQwen3LikeTransformers) {
  ChatTemplate t = ChatTemplate::from_tokenizer_dir(tokenizer_dir("qwen3"));
  ChatTemplateInputs in;
  in.messages = conversation();
  EXPECT_EQ(t.render(in),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\nwave\n"
            "</think>\n\nHello!<|im_end|>\n");

  in.messages.erase(2);
  in.add_generation_prompt = true;
  in.extra_context["enable_thinking"] = false;
  EXPECT_EQ(t.render(in),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
}

TEST(ChatTemplate, RendersQwen3ToolsWithKeyOrderPreserved) {
  ChatTemplate t = ChatTemplate::from_tokenizer_dir(tokenizer_dir("qwen3"));
  ChatTemplateInputs in;
  in.messages = Json::parse(R"([{"role": "user", "content": "call f"}])");
  in.tools = Json::parse(R"([{"type": "function", "function": {"name": "f", "description": "d",
                              "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}}])");
  in.add_generation_prompt = true;
  EXPECT_EQ(t.render(in),
            "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided "
            "with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": "
            "\"f\", \"description\": \"d\", \"parameters\": {\"type\": \"object\", \"properties\": {\"x\": {\"type\": \"integer\"}}}}}\n"
            "</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> "
            "XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
            "<|im_start|>user\ncall f<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, RendersLlama3WithBosFromConfig) {
  ChatTemplate t = ChatTemplate::from_tokenizer_dir(tokenizer_dir("llama3"));
  EXPECT_EQ(t.special_tokens().value("bos_token", ""), "<|begin_of_text|>");
  ChatTemplateInputs in;
  in.messages = conversation();
  in.messages.erase(2);
  EXPECT_EQ(t.render(in),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user"
            "<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplate, PreparesMessagesLikeTransformers) {
  // None-valued keys are dropped; reasoning fields are aliased to `thinking` and `reasoning_content`.
  ChatTemplate t = ChatTemplate::from_string(
      "{% for m in messages %}{{ m|tojson }}|{{ m.tool_calls is defined }}\n{% endfor %}{{ bos_token }}{{ eos_token }}",
      Json{{"bos_token", "<s>"}, {"eos_token", "</s>"}});
  ChatTemplateInputs in;
  in.messages = Json::parse(R"([{"role": "user", "content": "q", "tool_calls": null},
                                {"role": "assistant", "content": "a", "reasoning": "r"}])");
  EXPECT_EQ(t.render(in),
            "{\"role\": \"user\", \"content\": \"q\"}|False\n"
            "{\"thinking\": \"r\", \"role\": \"assistant\", \"content\": \"a\", \"reasoning\": \"r\", \"reasoning_content\": \"r\"}|False\n"
            "<s></s>");
}

TEST(ChatTemplate, ExposesToolsDocumentsAndKwargs) {
  ChatTemplate t = ChatTemplate::from_string("{{ tools }}|{{ documents }}|{{ add_generation_prompt }}|{{ flavour }}");
  ChatTemplateInputs in;
  in.messages = Json::parse(R"([{"role": "user", "content": "x"}])");
  in.extra_context["flavour"] = "mint";
  EXPECT_EQ(t.render(in), "None|None|False|mint");
  in.extra_context["tools"] = Json::array();
  MOEFORGE_EXPECT_ERROR(t.render(in), "multiple values for keyword argument 'tools'");
}

TEST(ChatTemplate, RejectsBadConversations) {
  ChatTemplate t = ChatTemplate::from_string("{{ messages|length }}");
  ChatTemplateInputs in;
  MOEFORGE_EXPECT_ERROR(t.render(in), "empty conversation");
  in.messages = Json::parse(R"(["not a dict"])");
  MOEFORGE_EXPECT_ERROR(t.render(in), "should be dicts");
  in.messages = Json::object();
  MOEFORGE_EXPECT_ERROR(t.render(in), "must be a JSON array");
}

TEST(ChatTemplate, LoadsTemplatesFromDirectoryVariants) {
  TempDir dir;
  // Named templates in the config, special tokens as AddedToken objects.
  write_text_file(dir / "tokenizer_config.json",
                  R"({"bos_token": {"content": "<B>", "lstrip": false}, "eos_token": "<E>", "pad_token": null,
                      "chat_template": [{"name": "default", "template": "D{{ bos_token }}{{ pad_token is defined }}"},
                                        {"name": "tool_use", "template": "T{{ tools|length }}{{ eos_token }}"}]})");
  ChatTemplateInputs in;
  in.messages = Json::parse(R"([{"role": "user", "content": "x"}])");
  ChatTemplate named = ChatTemplate::from_tokenizer_dir(dir.path().string());
  EXPECT_EQ(named.template_names(), (std::vector<std::string>{"default", "tool_use"}));
  EXPECT_EQ(named.render(in), "D<B>False");
  in.tools = Json::array({Json::object()});
  EXPECT_EQ(named.render(in), "T1<E>");

  // chat_template.jinja takes priority over the config entry.
  write_text_file(dir / "chat_template.jinja", "from file {{ bos_token }}\n");
  EXPECT_EQ(ChatTemplate::from_tokenizer_dir(dir.path().string()).render(in), "from file <B>");
}

TEST(ChatTemplate, ReportsMissingAndBrokenTemplates) {
  TempDir dir;
  MOEFORGE_EXPECT_ERROR(ChatTemplate::from_tokenizer_dir((dir / "nope").string()), "does not exist");
  write_text_file(dir / "tokenizer_config.json", R"({"eos_token": "</s>"})");
  MOEFORGE_EXPECT_ERROR(ChatTemplate::from_tokenizer_dir(dir.path().string()), "no chat template");
  write_text_file(dir / "tokenizer_config.json", R"({"chat_template": "{% for x in y %}"})");
  MOEFORGE_EXPECT_ERROR(ChatTemplate::from_tokenizer_dir(dir.path().string()), "tokenizer_config.json:chat_template:1:");
  write_text_file(dir / "tokenizer_config.json", "{broken");
  MOEFORGE_EXPECT_ERROR(ChatTemplate::from_tokenizer_dir(dir.path().string()), "cannot parse");
}

TEST(ChatTemplate, InjectsTheDateForStrftimeNow) {
  ChatTemplate t = ChatTemplate::from_string("{{ strftime_now('%d %b %Y %A') }}");
  ChatTemplateInputs in;
  in.messages = Json::parse(R"([{"role": "user", "content": "x"}])");
  in.now = parse_datetime("2024-07-26");
  EXPECT_EQ(t.render(in), "26 Jul 2024 Friday");
  MOEFORGE_EXPECT_ERROR(parse_datetime("yesterday"), "bad date");
}

}  // namespace
}  // namespace moeforge::chat
