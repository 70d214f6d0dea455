// Temporaries left by interrupted runs: removed by the next writer to the same output when their
// process is gone and nobody holds their lock; never when the writer is alive, holds the lock, or the
// temporary belongs to another output.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "io/checkpoint_writer.h"
#include "io/stale_temps.h"
#include "test_util.h"

namespace moeforge {
namespace {
namespace fs = std::filesystem;

long dead_pid() {
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  return child;
}

fs::path make_temp(const fs::path& parent, const std::string& entry, size_t bytes) {
  fs::create_directories(parent / entry);
  std::ofstream(parent / entry / "model.safetensors") << std::string(bytes, 'x');
  return parent / entry;
}

TEST(StaleTemps, ParsesOnlyTemporaryNamesOfTheOutput) {
  long pid = 0;
  EXPECT_TRUE(parse_temp_name(".out.tmp-123-456", "out", &pid));
  EXPECT_EQ(pid, 123);
  EXPECT_TRUE(parse_temp_name(".out.tmp-77", "out", &pid));
  EXPECT_EQ(pid, 77);
  EXPECT_TRUE(parse_temp_name(".step-00000003.tmp-9", "", &pid));
  EXPECT_FALSE(parse_temp_name(".out2.tmp-123-456", "out", &pid));
  EXPECT_FALSE(parse_temp_name(".ou.tmp-123", "out", &pid));
  EXPECT_FALSE(parse_temp_name("out.tmp-123", "out", &pid));          // not hidden: a user's file
  EXPECT_FALSE(parse_temp_name(".out.tmp-123-456.old", "out", &pid));  // the previous output moved aside
  EXPECT_FALSE(parse_temp_name(".out.tmp-abc", "out", &pid));
}

TEST(StaleTemps, RemovesWhatADeadWriterLeftAndSaysHowMuch) {
  test::TempDir dir;
  const fs::path stale = make_temp(dir.path(), ".out.tmp-" + std::to_string(dead_pid()) + "-42", 1 << 20);
  const fs::path other = make_temp(dir.path(), ".other.tmp-" + std::to_string(dead_pid()) + "-42", 10);
  testing::internal::CaptureStderr();
  StaleTemps freed = remove_stale_temps(dir.path(), "out");
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(freed.count, 1u);
  EXPECT_GE(freed.bytes, 1u << 20);
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(other));  // another output's temporary: not this run's business
  EXPECT_NE(err.find("removed 1 temporary output left by an interrupted run"), std::string::npos) << err;
  EXPECT_NE(err.find(stale.filename().string()), std::string::npos) << err;
  EXPECT_NE(err.find("freeing 1."), std::string::npos) << err;
  EXPECT_EQ(remove_stale_temps(dir.path(), "").count, 1u);  // any name: the other one too
  EXPECT_FALSE(fs::exists(other));
}

TEST(StaleTemps, KeepsTemporariesOfLiveOrLockingWriters) {
  test::TempDir dir;
  const fs::path mine = make_temp(dir.path(), ".out.tmp-" + std::to_string(::getpid()) + "-1", 10);
  const fs::path locked = make_temp(dir.path(), ".out.tmp-" + std::to_string(dead_pid()) + "-2", 10);
  int fd = ::open(locked.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);  // a writer on another host with a reused pid, say
  EXPECT_EQ(remove_stale_temps(dir.path(), "out").count, 0u);
  EXPECT_TRUE(fs::exists(mine));
  EXPECT_TRUE(fs::exists(locked));
  ::close(fd);
  EXPECT_EQ(remove_stale_temps(dir.path(), "out").count, 1u);
  EXPECT_FALSE(fs::exists(locked));
  EXPECT_TRUE(fs::exists(mine));
}

TEST(StaleTemps, OwnedTempDirIsLockedUntilReleased) {
  test::TempDir dir;
  OwnedTempDir owned(dir.path() / "out");
  ASSERT_TRUE(fs::is_directory(owned.path()));
  int fd = ::open(owned.path().c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  EXPECT_NE(::flock(fd, LOCK_EX | LOCK_NB), 0);
  owned.release();
  EXPECT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  ::close(fd);
}

TEST(StaleTemps, TheNextCheckpointWriterCleansUpAnInterruptedOne) {
  test::TempDir dir;
  const fs::path stale = make_temp(dir.path(), ".out.tmp-" + std::to_string(dead_pid()) + "-7", 4096);
  CheckpointWriter writer(dir.path() / "out", {{"w", DType::F32, {2}}});
  EXPECT_FALSE(fs::exists(stale));
  const float values[2] = {1.f, 2.f};
  writer.write("w", ByteView{reinterpret_cast<const uint8_t*>(values), sizeof values});
  writer.commit();
  EXPECT_TRUE(fs::exists(dir.path() / "out" / "model.safetensors"));
  size_t hidden = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) hidden += e.path().filename().string()[0] == '.';
  EXPECT_EQ(hidden, 0u);
}

}  // namespace
}  // namespace moeforge
