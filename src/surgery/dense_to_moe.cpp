// Plan builder for dense -> MoE outputs (see dense_to_moe.h).
#include "surgery/dense_to_moe.h"

#include "arch/family_adapter.h"
#include "common/error.h"
#include "surgery/surgery_util.h"

namespace moeforge::surgery {
namespace {

using Role = TensorRole;

constexpr Role kExpertRoles[] = {Role::ExpertGate, Role::ExpertUp, Role::ExpertDown, Role::ExpertUpBias, Role::ExpertDownBias};

bool is_shared_role(Role r) { return r == Role::SharedGate || r == Role::SharedUp || r == Role::SharedDown; }

OutputGroup experts_group(const DenseToMoe& job, int64_t l, DType dtype) {
  const ModelSpec& out = job.out_spec;
  OutputGroup g;
  g.kind = GroupKind::Transform;
  g.what = cat("layer ", l, " experts (", out.moe.num_experts, ")");
  for (int64_t e = 0; e < out.moe.num_experts; ++e)
    for (Role r : kExpertRoles)
      if (spec_has_role(out, r, l)) g.decls.push_back(TensorDecl{tensor_name(out, r, l, e), dtype, role_shape(out, r)});
  for (Role r : {Role::MlpGate, Role::MlpUp, Role::MlpDown, Role::MlpUpBias, Role::MlpDownBias})
    if (spec_has_role(job.base_spec, r, l)) g.bytes_read += job.base->tensor(tensor_name(job.base_spec, r, l)).info->num_bytes();
  const DenseToMoe* j = &job;
  g.produce = [j, l, dtype](CheckpointWriter& writer) {
    const ModelSpec& o = j->out_spec;
    const int64_t H = o.hidden_size, F = o.moe.moe_intermediate_size;
    int64_t count = 0;
    const bool gated = spec_has_role(o, Role::ExpertGate, l), biased = spec_has_role(o, Role::ExpertUpBias, l);
    j->experts(l, [&](int64_t e, const ExpertWeights& w) {
      if (w.hidden_size != H || w.intermediate_size != F || static_cast<int64_t>(w.gate.size()) != (gated ? F * H : 0))
        fail("layer ", l, " expert ", e, ": weights are [", w.intermediate_size, ", ", w.hidden_size, "], the output needs [",
             F, ", ", H, "] ", gated ? "with a gate" : "without a gate");
      if (gated) write_floats(writer, tensor_name(o, Role::ExpertGate, l, e), dtype, w.gate);
      write_floats(writer, tensor_name(o, Role::ExpertUp, l, e), dtype, w.up);
      write_floats(writer, tensor_name(o, Role::ExpertDown, l, e), dtype, w.down);
      if (biased) {  // GPT-Neo MoE: each expert keeps its MLP's biases (zeros when the source has none)
        write_floats(writer, tensor_name(o, Role::ExpertUpBias, l, e), dtype, w.up_bias.empty() ? std::vector<float>(F, 0.0f) : w.up_bias);
        write_floats(writer, tensor_name(o, Role::ExpertDownBias, l, e), dtype,
                     w.down_bias.empty() ? std::vector<float>(H, 0.0f) : w.down_bias);
      }
      ++count;
    });
    if (count != o.moe.num_experts) fail("internal error: layer ", l, " produced ", count, " experts");
  };
  return g;
}

}  // namespace

OutputPlan build_dense_to_moe_plan(const DenseToMoe& job) {
  OutputPlan plan;
  const ModelSpec& out = job.out_spec;
  const ModelSpec& base = job.base_spec;
  for_each_tensor(out, [&](const ExpectedTensor& t) {
    const int64_t l = t.layer;
    if (role_is_per_expert(t.role)) {
      if (t.expert == 0 && t.role == Role::ExpertUp) {
        std::string up = tensor_name(base, Role::MlpUp, l);
        plan.add(experts_group(job, l, float_dtype_of(*job.base, up)));
      }
      return;
    }
    if (is_shared_role(t.role)) {
      if (!job.shared) fail("internal error: the output has a shared expert but no source for it");
      DType dtype = float_dtype_of(*job.base, tensor_name(base, Role::MlpUp, l));
      const DenseToMoe* j = &job;
      Role role = t.role;
      plan.add(float_tensor_group(GroupKind::Transform, cat("layer ", l, " shared expert ", role_name(role)), t.name, dtype,
                                  t.shape, [j, l, role] {
                                    ExpertWeights w = j->shared(l);
                                    return role == Role::SharedGate ? w.gate : role == Role::SharedUp ? w.up : w.down;
                                  }));
      return;
    }
    if (t.role == Role::SharedExpertGate) {  // zeros: sigmoid(0) = 0.5 on every token
      DType dtype = float_dtype_of(*job.base, tensor_name(base, Role::AttnNorm, l));
      plan.add(float_tensor_group(GroupKind::Create, cat("layer ", l, " shared expert gate (zeros)"), t.name, dtype, t.shape,
                                  [H = out.hidden_size] { return std::vector<float>(H, 0.0f); }));
      return;
    }
    if (t.role == Role::Router) {
      DType dtype = float_dtype_of(*job.base, tensor_name(base, Role::AttnNorm, l));
      const DenseToMoe* j = &job;
      plan.add(float_tensor_group(GroupKind::Create, cat("layer ", l, " router"), t.name, dtype, t.shape,
                                  [j, l] { return j->router(l); }));
      return;
    }
    if ((t.role == Role::QNorm || t.role == Role::KNorm) && base.qk_norm == QkNorm::None) {
      DType dtype = float_dtype_of(*job.base, tensor_name(base, Role::AttnNorm, l));
      plan.add(float_tensor_group(GroupKind::Create, cat("layer ", l, " ", role_name(t.role), " (ones)"), t.name, dtype, t.shape,
                                  [n = t.shape[0]] { return std::vector<float>(n, 1.0f); }));
      return;
    }
    if (!spec_has_role(base, t.role, l)) fail("internal error: the source has no tensor for output '", t.name, "'");
    std::string base_name = tensor_name(base, t.role, l);
    if (job.non_ffn && job.non_ffn(t, base_name, plan)) return;
    plan.copy(*job.base, base_name, t.name);
  });
  return plan;
}

}  // namespace moeforge::surgery
