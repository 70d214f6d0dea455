#include "pipeline/pipeline.h"

#include <torch/torch.h>

#include <algorithm>
#include <iostream>

#include "arch/family_adapter.h"
#include "common/error.h"
#include "common/remove_tree.h"
#include "data/dataset.h"
#include "eval/evaluate.h"
#include "io/atomic_file.h"
#include "io/checkpoint_store.h"
#include "model/device.h"
#include "model/transformer.h"
#include "pipeline/model_card.h"
#include "pipeline/pipeline_config.h"
#include "report/report.h"
#include "stats/analyze_job.h"
#include "stats/stats_job.h"
#include "surgery/grow.h"
#include "arch/remote_code.h"
#include "surgery/shared_expert.h"
#include "surgery/upcycle.h"
#include "train/export.h"
#include "train/recipe.h"
#include "train/teacher.h"
#include "train/teacher_cache.h"
#include "io/hub_push.h"
#include "train/trainer.h"
#include "tokenizer/tokenizer.h"

namespace moeforge::pipeline {
namespace fs = std::filesystem;

const std::vector<std::string>& stage_names() {
  static const std::vector<std::string> names = {"upcycle", "stats_before", "analyze", "grow", "shared_expert",
                                                 "teacher_cache", "train", "merge", "eval", "stats_after", "export", "push", "report"};
  return names;
}

namespace {

bool is_moe(const fs::path& model_dir) {
  return load_model_spec(*CheckpointStore::open(model_dir)).has_moe();
}

// The validation data every eval in the run scores: the held-out split of the training data (the
// recipe's split, so no trained-on document is scored), or all of a separate eval_data spec.
std::vector<eval::EvalSequence> eval_sequences(const PipelineConfig& c, const train::Recipe* recipe,
                                               double* fraction_used) {
  data::DataOptions options;
  options.block_size = c.eval.block_size;
  options.seed = recipe ? recipe->seed : c.seed;
  if (recipe) options.max_bad_fraction = recipe->max_bad_fraction;
  data::Split split = data::Split::Train;
  if (c.eval_data == c.data) {
    options.validation_fraction = recipe && recipe->validation_fraction > 0 ? recipe->validation_fraction
                                                                             : c.eval.validation_fraction;
    split = data::Split::Validation;
  } else {
    options.validation_fraction = 0.0;
  }
  *fraction_used = split == data::Split::Validation ? options.validation_fraction : 0.0;
  auto dataset = data::Dataset::open(c.eval_data, c.tokenizer, options);
  auto sequences = eval::sequences_of(dataset, split, c.eval.max_blocks);
  if (sequences.empty())
    fail(c.config_path.string(), ": eval: no ", split == data::Split::Validation ? "validation " : "", "blocks of ",
         c.eval.block_size, " tokens in ", c.eval_data, " (lower eval.block_size or add data)");
  return sequences;
}

// Hard-links (else copies) every file of a model directory into `to`.
void link_or_copy_dir(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  for (const auto& entry : fs::directory_iterator(from)) {
    if (!entry.is_regular_file()) continue;
    std::error_code ec;
    fs::create_hard_link(entry.path(), to / entry.path().filename(), ec);
    if (ec) fs::copy_file(entry.path(), to / entry.path().filename(), fs::copy_options::overwrite_existing);
  }
}

class Runner {
 public:
  Runner(const PipelineOptions& options) : o_(options), c_(load_pipeline_config(options.config)) {
    if (!o_.until.empty() && std::find(stage_names().begin(), stage_names().end(), o_.until) == stage_names().end())
      fail("--until '", o_.until, "' is not a stage (", join_stage_names(), ")");
    if (!c_.recipe.is_null()) {
      // The eval must score documents training never saw: hold some out unless the recipe says how many.
      if (!c_.recipe.contains("validation_fraction") && c_.eval_data == c_.data)
        c_.recipe["validation_fraction"] = c_.eval.validation_fraction;
      recipe_ = train::parse_recipe(c_.recipe, c_.recipe_label);  // validate before any stage runs
    }
    if (c_.distill) train::Teacher::check_directory(c_.distill->teacher);
    if (c_.distill && c_.distill->cache) cache_seq_len_ = distill_seq_len();
  }

  // One cache serves every distilling phase only if they share the block size; checked before any stage.
  int64_t distill_seq_len() const {
    int64_t seq_len = 0;
    bool any = false;
    for (const auto& p : recipe_->phases) any = any || p.losses.distill.enabled;
    for (const auto& p : recipe_->phases) {
      if (any && !p.losses.distill.enabled) continue;  // without any, train --teacher-cache makes every phase distil
      if (seq_len != 0 && p.seq_len != seq_len)
        fail(c_.config_path.string(), ": distill.cache: the distilling phases have seq_len ", seq_len, " and ", p.seq_len,
             "; one teacher cache needs one block size");
      seq_len = p.seq_len;
    }
    return seq_len;
  }

  std::vector<std::string> run() {
    check_base_fits_the_job();
    // A push at the end must be able to run before hours of work start.
    if (!c_.export_stage.push_repo.empty()) check_push_prerequisites(c_.export_stage.push_repo, c_.config_path.string() + ": export.push");
    const fs::path& dir = o_.run_dir;
    fs::create_directories(dir);
    remember_job();
    fs::path current = c_.base;

    if (c_.upcycle) {
      if (stage("upcycle", dir / "upcycled")) {
        surgery::UpcycleOptions u = *c_.upcycle;
        u.source = current;
        u.out = dir / "upcycled";
        u.seed = c_.seed;
        u.verify = true;
        auto r = surgery::upcycle(u);
        std::cout << "upcycle: max |logit difference| vs the dense base " << r.max_logit_diff << "\n";
      }
      current = dir / "upcycled";
    }
    if (done()) return ran_;

    if (c_.stats) {
      if (stage("stats_before", dir / "stats_before")) collect_stats(current, dir / "stats_before");
      if (done()) return ran_;
      if (stage("analyze", dir / "plan.json")) {
        stats::AnalyzeOptions a;
        a.stats_dir = dir / "stats_before";
        a.clone.min_usage = c_.analyze->clone_min_usage;
        a.clone.min_entropy = c_.analyze->clone_min_entropy;
        a.clone.num_new = c_.analyze->num_new;
        a.clone.max_new = c_.analyze->max_new;
        const auto analysis = stats::analyze(a);
        write_file_atomic(dir / "plan.json", stats::plan_json(analysis, a).dump(1) + "\n");
        std::cout << stats::analysis_table(analysis, a);
      }
      if (done()) return ran_;
    }

    if (c_.grow) {
      if (stage("grow", dir / "grown")) {
        surgery::GrowOptions g = *c_.grow;
        g.source = current;
        g.out = dir / "grown";
        if (g.clone == kCloneFromPlan) {
          g.plan = dir / "plan.json";
          g.clone.clear();
        }
        g.seed = c_.seed;
        auto r = surgery::grow(g);
        std::cout << "grow: " << r.experts_before << " -> " << r.experts_after << " experts per layer; max |logit difference| "
                  << r.max_logit_diff << "\n";
      }
      current = dir / "grown";
      if (done()) return ran_;
    }
    if (c_.shared_expert) {
      if (stage("shared_expert", dir / "shared")) {
        surgery::SharedExpertOptions s = *c_.shared_expert;
        s.source = current;
        s.out = dir / "shared";
        s.seed = c_.seed;
        if (fs::exists(dir / "plan.json")) s.plan = dir / "plan.json";
        s.verify = true;
        auto r = surgery::add_shared_expert(s);
        std::cout << "shared expert: max |logit difference| " << r.max_logit_diff << "\n";
      }
      current = dir / "shared";
      if (done()) return ran_;
    }
    const fs::path after_surgery = current;

    if (recipe_) {
      if (c_.distill && c_.distill->cache) {
        if (stage("teacher_cache", dir / "teacher_cache.json")) write_teacher_cache(dir / "teacher_cache", dir / "teacher_cache.json");
        if (done()) return ran_;
      }
      if (stage("train", dir / "train" / "summary.json")) train(current, dir / "train");
      if (done()) return ran_;
      if (stage("merge", dir / "model")) {
        train::MergeOptions m;
        m.base = current;
        m.run = dir / "train";
        m.out = dir / "model";
        m.remote_code = c_.export_stage.remote_code;
        m.drop_selection_bias = c_.export_stage.drop_selection_bias;
        const size_t n = train::merge_deltas(m);
        std::cout << "merged " << n << " trained tensors into " << m.out.string() << "\n";
      }
      current = dir / "model";
      if (done()) return ran_;
    }

    if (stage("eval", dir / "eval.json")) evaluate(after_surgery, current, dir / "eval.json");
    if (done()) return ran_;
    if (c_.stats && is_moe(current) && current != after_surgery) {
      if (stage("stats_after", dir / "stats_after")) collect_stats(current, dir / "stats_after");
      if (done()) return ran_;
    }
    if (stage("export", dir / "export")) export_model(current, dir / "export", dir / "eval.json");
    if (done()) return ran_;
    if (!c_.export_stage.push_repo.empty()) {
      if (stage("push", dir / "push.json")) {
        PushOptions p;
        p.dir = dir / "export";
        p.repo = c_.export_stage.push_repo;
        p.revision = c_.export_stage.push_revision;
        p.private_repo = c_.export_stage.push_private;
        p.commit_message = "Upload " + (c_.model_name.empty() ? fs::absolute(dir).lexically_normal().filename().string() : c_.model_name) +
                           " (moeforge pipeline)";
        push_to_hub(p);
        write_file_atomic(dir / "push.json", nlohmann::json{{"repo", p.repo}, {"revision", p.revision}}.dump(2) + "\n");
      }
      if (done()) return ran_;
    }
    if (c_.report) {
      // Cheap and a view of everything above: rewritten on every run.
      std::cout << "== report\n";
      report::ReportOptions r;
      r.run_dir = dir;
      r.out = dir / "report.html";
      report::write_report(r);
      std::cout << "wrote " << r.out.string() << "\n";
      ran_.push_back("report");
    }
    return ran_;
  }

 private:
  static std::string join_stage_names() {
    std::string s;
    for (const auto& n : stage_names()) s += (s.empty() ? "" : ", ") + n;
    return s;
  }

  // Stages that need an MoE need one before any stage runs, not after the earlier ones finished.
  void check_base_fits_the_job() const {
    const std::string job = c_.config_path.string(), base = c_.base.string();
    if (is_moe(c_.base)) {
      if (c_.upcycle) fail(job, ": surgery.upcycle: ", base, " is already an MoE (use surgery.grow)");
      return;
    }
    if (c_.upcycle) return;  // upcycle makes the MoE the later stages work on
    if (c_.stats) fail(job, ": stats: ", base, " is dense; router statistics need an MoE (add surgery.upcycle)");
    if (c_.grow) fail(job, ": surgery.grow: ", base, " is not an MoE");
    if (c_.shared_expert) fail(job, ": surgery.shared_expert: ", base, " is not an MoE");
  }

  // Prints the stage header; false (skip) when its output is already complete.
  bool stage(const std::string& name, const fs::path& output) {
    last_ = name;
    if (fs::exists(output)) {
      std::cout << "== " << name << ": skipped (" << output.string() << " is complete)\n";
      return false;
    }
    std::cout << "== " << name << "\n" << std::flush;
    ran_.push_back(name);
    return true;
  }
  bool done() const { return !o_.until.empty() && last_ == o_.until; }

  // A run directory belongs to one job: refuse to mix the outputs of two different configs.
  void remember_job() {
    const fs::path stored = o_.run_dir / "pipeline.json";
    if (fs::exists(stored)) {
      if (read_json_file(stored) != c_.raw)
        fail(o_.run_dir.string(), ": holds a run of a different pipeline config (", stored.string(),
             "); use another --out, or delete the run directory to start over");
      return;
    }
    write_file_atomic(stored, c_.raw.dump(2) + "\n");
  }

  void collect_stats(const fs::path& model, const fs::path& out) {
    stats::StatsOptions s;
    s.model = model;
    s.out = out;
    s.tokenizer = c_.tokenizer;
    s.data = c_.data;
    s.tokens = c_.stats->tokens;
    s.block_size = c_.stats->block_size;
    s.batch_size = c_.stats->batch_size;
    s.seed = c_.seed;
    if (recipe_) s.max_bad_fraction = recipe_->max_bad_fraction;
    s.progress = o_.progress;
    s.load.device = model::parse_device(c_.device);
    stats::run_stats(s);
  }

  // The teacher once over the training blocks, with the recipe's data options (resumes a partial cache).
  void write_teacher_cache(const fs::path& cache, const fs::path& summary) {
    train::TeacherCacheOptions o;
    o.teacher_dir = c_.distill->teacher;
    o.tokenizer_dir = c_.tokenizer;
    o.out_dir = cache;
    o.data_spec = c_.data;
    o.block_size = cache_seq_len_;
    o.top_k = c_.distill->top_k;
    o.router_top_k = c_.distill->router_top_k;
    o.codec = train::parse_cache_codec(c_.distill->codec, "distill.cache.codec");
    o.batch_size = c_.distill->batch_size;
    o.seed = recipe_->seed;
    o.validation_fraction = recipe_->validation_fraction;
    o.packing = recipe_->packing;
    o.max_bad_fraction = recipe_->max_bad_fraction;
    o.device = c_.device;
    o.progress = o_.progress;
    const auto r = train::write_teacher_cache(o);
    std::cout << "teacher cache: " << r.tokens << " tokens, " << r.manifest.token_bytes() << " B/token\n";
    const nlohmann::json j = {{"cache", cache.string()}, {"teacher", o.teacher_dir.string()}, {"tokens_written", r.tokens},
                              {"bytes_written", r.bytes}, {"bytes_per_token", r.manifest.token_bytes()},
                              {"seconds", r.seconds}, {"manifest", r.manifest.to_json()}};
    write_file_atomic(summary, j.dump(1) + "\n");
  }

  void train(const fs::path& model, const fs::path& run) {
    train::TrainOptions t;
    t.model_dir = model;
    t.data_spec = c_.data;
    t.tokenizer_dir = c_.tokenizer;
    t.recipe = c_.recipe;
    t.recipe_label = c_.recipe_label;
    t.out_dir = run;
    t.progress = o_.progress;
    t.device = c_.device;
    // experts=plan:esft selectors read analyze's plan, which describes the model before grow.
    if (fs::exists(o_.run_dir / "plan.json") && !c_.grow) t.analysis_plan = o_.run_dir / "plan.json";
    if (c_.distill) {
      if (c_.distill->cache) t.teacher_cache = o_.run_dir / "teacher_cache";
      else t.teacher_dir = c_.distill->teacher;
    }
    if (fs::exists(run / "run.json")) {
      t.resume = true;  // interrupted earlier: continue from its latest checkpoint
    } else if (fs::exists(run)) {
      remove_tree_or_fail(run);  // died before the run was recorded: nothing to keep
    }
    train::Trainer trainer(t);
    auto result = trainer.run();
    if (!result.finished) fail(run.string(), ": training stopped before the end; re-run the pipeline to resume it");
  }

  void evaluate(const fs::path& after_surgery, const fs::path& final_model, const fs::path& out) {
    double fraction = 0.0;
    const auto sequences = eval_sequences(c_, recipe_ ? &*recipe_ : nullptr, &fraction);
    eval::EvalOptions options;
    options.batch_size = c_.eval.batch_size;
    options.progress = o_.progress;
    model::LoadOptions load;
    load.device = model::parse_device(c_.device);
    auto base = model::Transformer::load(c_.base, load);
    nlohmann::json j = {{"data", c_.eval_data},
                        {"split", fraction > 0 ? "validation" : "all"},
                        {"validation_fraction", fraction},
                        {"block_size", c_.eval.block_size},
                        {"blocks", sequences.size()}};
    nlohmann::json models = nlohmann::json::array();
    auto score = [&](const std::string& label, const fs::path& dir, const model::Transformer& m, bool vs_base) {
      auto r = eval::evaluate(m, sequences, options, vs_base ? base.get() : nullptr);
      auto e = eval::to_json(r);
      e["label"] = label;
      e["model"] = dir.string();
      models.push_back(e);
      std::cout << label << ": loss " << r.loss << "  ppl " << r.perplexity << "  balance " << r.balance_score << "\n";
    };
    score("base", c_.base, *base, false);
    if (after_surgery != c_.base) score("after surgery", after_surgery, *model::Transformer::load(after_surgery, load), true);
    if (final_model != after_surgery) score("trained", final_model, *model::Transformer::load(final_model, load), true);
    if (c_.distill && c_.distill->teacher != c_.base) {
      // Against the teacher it was distilled from (KL, top-1 agreement, router drift).
      auto teacher = model::Transformer::load(c_.distill->teacher, load);
      auto trained = model::Transformer::load(final_model, load);
      eval::EvalOptions vs = options;
      if (teacher->spec().vocab_size != trained->spec().vocab_size)
        vs.compare_vocab = static_cast<int64_t>(Tokenizer::load(c_.tokenizer).vocab_size());
      auto r = eval::evaluate(*trained, sequences, vs, teacher.get());
      auto e = eval::to_json(r);
      e["label"] = "trained vs teacher";
      e["model"] = final_model.string();
      e["baseline"]["model"] = c_.distill->teacher.string();
      models.push_back(e);
      std::cout << "trained vs teacher: KL " << r.mean_kl << "  top-1 agreement " << r.top1_agreement << "\n";
    }
    j["models"] = models;
    write_file_atomic(out, j.dump(1) + "\n");
  }

  void export_model(const fs::path& model, const fs::path& out, const fs::path& eval_json) {
    const fs::path tmp = out.string() + ".partial";
    remove_tree_or_fail(tmp);
    link_or_copy_dir(model, tmp);
    fs::remove(tmp / "README.md");  // a hard link to the source's card must not be edited in place
    // config.json and the remote code files again, as export.remote_code says (hard links: replaced, not edited)
    nlohmann::json config = read_json_file(model / "config.json");
    const auto remote_code_files = apply_remote_code(config, c_.export_stage.remote_code);
    if (!c_.export_stage.remote_code) std::cerr << note_ignored_by_transformers(config);
    for (const char* name : {"config.json", "configuration_moeforge.py", "modeling_moeforge.py"}) fs::remove(tmp / name);
    write_file_atomic(tmp / "config.json", config.dump(2) + "\n");
    for (const auto& [name, text] : remote_code_files) write_file_atomic(tmp / name, text);
    ModelCard card;
    card.model_config = config;
    card.name = c_.model_name.empty() ? fs::absolute(o_.run_dir).filename().string() : c_.model_name;
    card.version = o_.version;
    card.config = c_.raw;
    card.eval = fs::exists(eval_json) ? read_json_file(eval_json) : nlohmann::json();
    card.spec = load_model_spec(*CheckpointStore::open(model));
    card.base_spec = load_model_spec(*CheckpointStore::open(c_.base));
    write_file_atomic(tmp / "README.md", model_card_markdown(card));
    fs::rename(tmp, out);
    std::cout << "exported " << out.string() << " (Hugging Face checkpoint + README.md model card)\n";
  }

  PipelineOptions o_;
  PipelineConfig c_;
  std::optional<train::Recipe> recipe_;
  int64_t cache_seq_len_ = 0;  // distill.cache: the block size of the distilling phases
  std::vector<std::string> ran_;
  std::string last_;
};

}  // namespace

std::vector<std::string> run_pipeline(const PipelineOptions& options) {
  Runner runner(options);
  return runner.run();
}

}  // namespace moeforge::pipeline
