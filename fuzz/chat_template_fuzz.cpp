// Fuzzes the Jinja parser and renderer with a fixed chat context.
#include <string_view>

#include "chat/jinja_template.h"
#include "common/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view source(reinterpret_cast<const char*>(data), size);
  try {
    auto tmpl = moeforge::jinja::Template::parse(source, "fuzz.jinja");
    moeforge::jinja::Json context = moeforge::jinja::Json::parse(
        R"({"messages":[{"role":"system","content":"s"},{"role":"user","content":"hi"}],"add_generation_prompt":true,"bos_token":"<s>"})");
    (void)tmpl.render(context);
  } catch (const moeforge::Error&) {
  }
  return 0;
}
