// Tiny default configs for `moeforge init`: each family's adapter writes its own (FamilyWriter::
// init_config); this only adds model_type and architectures and words the error.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "arch/family_adapter.h"
#include "common/error.h"
#include "common/strings.h"
#include "init/random_init.h"

namespace moeforge::init {

nlohmann::json default_config(const std::string& family) {
  const FamilyAdapter* adapter = find_adapter(family);
  if (!adapter || !adapter->writer.init_config) {
    std::vector<std::string> names;
    for (const FamilyAdapter* a : all_adapters())
      if (a->writer.init_config) names.push_back(a->model_type);
    std::sort(names.begin(), names.end());
    fail("init: unknown family '", family, "'; supported: ", join(names, ", "));
  }
  nlohmann::json c = adapter->writer.init_config();
  c["model_type"] = adapter->model_type;
  c["architectures"] = nlohmann::json::array({adapter->writer.architecture});
  return c;
}

}  // namespace moeforge::init
