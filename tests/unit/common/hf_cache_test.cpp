// Tests of the local Hugging Face cache lookup (common/hf_cache.h): ids, revisions, env order,
// and the path -> id direction used by model cards.
#include "common/hf_cache.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "test_util.h"

namespace moeforge {
namespace {

namespace fs = std::filesystem;

// Sets an environment variable for the scope of a test.
struct ScopedEnv {
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_, old_->c_str(), 1);
    else unsetenv(name_);
  }
  const char* name_;
  std::optional<std::string> old_;
};

fs::path make_snapshot(const fs::path& hub, const std::string& folder, const std::string& commit) {
  const fs::path snap = hub / folder / "snapshots" / commit;
  fs::create_directories(snap);
  std::ofstream(snap / "config.json") << "{}";
  return snap;
}

TEST(HfCache, IdsResolveToTheirSnapshotByRevision) {
  test::TempDir dir;
  ScopedEnv home("HF_HOME", (dir / "home").string());
  ScopedEnv unset_hub("HF_HUB_CACHE", "");
  unsetenv("HF_HUB_CACHE");
  const fs::path hub = dir / "home" / "hub";
  const fs::path main_snap = make_snapshot(hub, "models--acme--tiny", "aaa111");
  const fs::path old_snap = make_snapshot(hub, "models--acme--tiny", "bbb222");
  fs::create_directories(hub / "models--acme--tiny" / "refs");
  std::ofstream(hub / "models--acme--tiny" / "refs" / "main") << "aaa111\n";
  std::ofstream(hub / "models--acme--tiny" / "refs" / "v1") << "bbb222";
  EXPECT_EQ(find_in_hub_cache("acme/tiny", HubKind::Model), main_snap);
  EXPECT_EQ(find_in_hub_cache("acme/tiny@v1", HubKind::Model), old_snap);
  EXPECT_EQ(find_in_hub_cache("acme/tiny@bbb222", HubKind::Model), old_snap);  // a commit
  EXPECT_FALSE(find_in_hub_cache("acme/tiny@v2", HubKind::Model));
  EXPECT_FALSE(find_in_hub_cache("acme/tiny", HubKind::Dataset));  // datasets--acme--tiny is another repo
  EXPECT_FALSE(find_in_hub_cache("acme/other", HubKind::Model));
  // No refs/main but one snapshot: that one.
  const fs::path only = make_snapshot(hub, "datasets--acme--corpus", "ccc333");
  EXPECT_EQ(find_in_hub_cache("acme/corpus", HubKind::Dataset), only);
  // An existing path always wins; an unknown id stays as given.
  EXPECT_EQ(resolve_hub_reference("acme/tiny"), main_snap.string());
  EXPECT_EQ(resolve_hub_reference(dir.path().string()), dir.path().string());
  EXPECT_EQ(resolve_hub_reference("acme/unknown"), "acme/unknown");
  // HF_HUB_CACHE wins over HF_HOME.
  ScopedEnv hub_cache("HF_HUB_CACHE", (dir / "elsewhere").string());
  EXPECT_FALSE(find_in_hub_cache("acme/tiny", HubKind::Model));
  EXPECT_NE(hub_cache_hint("acme/unknown").find((dir / "elsewhere").string()), std::string::npos);
  EXPECT_NE(hub_cache_hint("acme/unknown").find("hf download acme/unknown"), std::string::npos);
}

TEST(HfCache, IdShapesAndPathsBack) {
  EXPECT_TRUE(looks_like_hub_id("meta-llama/Llama-3.2-1B"));
  EXPECT_TRUE(looks_like_hub_id("gpt2"));
  EXPECT_TRUE(looks_like_hub_id("org/name@refs/pr/1"));
  EXPECT_FALSE(looks_like_hub_id("/abs/path"));
  EXPECT_FALSE(looks_like_hub_id("../up/dir"));
  EXPECT_FALSE(looks_like_hub_id("a/b/c"));
  EXPECT_FALSE(looks_like_hub_id("has space/x"));
  EXPECT_EQ(hub_cache_hint("local_dir"), "");  // a bare name is more likely a missing directory
  EXPECT_EQ(hub_id_of("/c/hub/models--openai--gpt-oss-20b/snapshots/abc/"), "openai/gpt-oss-20b");
  EXPECT_EQ(hub_id_of("/c/hub/models--gpt2/snapshots/abc"), "gpt2");
  EXPECT_EQ(hub_id_of("/models/mine"), "");
}

}  // namespace
}  // namespace moeforge
