// validate_store(): names, shapes, dtypes and the tensor count against expected_tensors().
#include "arch/validate_store.h"

#include <set>

#include "arch/expected_tensors.h"
#include "common/error.h"
#include "common/strings.h"
#include "io/checkpoint_store.h"

namespace moeforge {

StoreValidation validate_store(const ModelSpec& spec, const CheckpointStore& store) {
  StoreValidation result;
  std::vector<std::string> problems;
  std::set<std::string> expected_names;
  const std::string where = store.directory().string();
  for_each_tensor(spec, [&](const ExpectedTensor& t) {
    expected_names.insert(t.name);
    auto found = store.find(t.name);
    if (!found) {
      problems.push_back(cat("missing tensor '", t.name, "' (", role_name(t.role), ") in ", where));
      return;
    }
    const TensorInfo& info = *found->info;
    if (info.shape != t.shape) {
      problems.push_back(cat("tensor '", t.name, "' has wrong shape; expected ", shape_to_string(t.shape), ", got ",
                             shape_to_string(info.shape), " (", spec.model_type, " config ", spec.source, ")"));
      return;
    }
    bool dtype_ok = false;
    std::vector<std::string> allowed;
    for (DType d : t.dtypes) {
      dtype_ok = dtype_ok || d == info.dtype;
      allowed.emplace_back(dtype_name(d));
    }
    if (!dtype_ok)
      problems.push_back(cat("tensor '", t.name, "' has dtype ", dtype_name(info.dtype), "; expected one of ",
                             join(allowed, ", ")));
  });
  result.num_expected = expected_names.size();
  result.num_present = store.tensor_names().size();
  if (!problems.empty()) {
    if (problems.size() == 1) fail(problems.front());
    fail(problems.front(), " (and ", problems.size() - 1, " more problems)");
  }
  for (const std::string& name : store.tensor_names())
    if (!expected_names.count(name)) result.unused.push_back(name);
  if (!result.unused.empty()) {
    std::string examples;
    for (size_t i = 0; i < result.unused.size() && i < 3; ++i) examples += (i ? ", '" : "'") + result.unused[i] + "'";
    result.warnings.push_back(cat(result.unused.size(), " unused tensor(s) in ", where, ": ", examples,
                                  result.unused.size() > 3 ? ", ..." : ""));
  }
  return result;
}

}  // namespace moeforge
