// Open-addressing hash maps for the hot paths of encoding: string keys (vocab, word cache) stored
// in one byte pool and looked up by string_view, and 64-bit keys (BPE merge pairs).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace moeforge::tokenizer {

inline uint64_t hash_bytes(std::string_view s) {
  // 64-bit multiply-mix over 8-byte words; good enough spread for linear probing.
  constexpr uint64_t kMul = 0x9E3779B97F4A7C15ull;
  uint64_t h = 0x243F6A8885A308D3ull ^ (s.size() * kMul);
  const char* p = s.data();
  size_t n = s.size();
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * kMul;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * kMul;
    h ^= h >> 29;
  }
  h *= kMul;
  return h ^ (h >> 32);
}

inline uint64_t hash_u64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xFF51AFD7ED558CCDull;
  x ^= x >> 33;
  x *= 0xC4CEB9FE1A85EC53ull;
  return x ^ (x >> 33);
}

// string -> V. Keys are copied into an internal pool; insert() keeps the first value for a key
// unless `overwrite` is set.
template <typename V>
class StringMap {
 public:
  size_t size() const { return size_; }
  size_t pool_bytes() const { return pool_.size(); }

  void clear() {
    slots_.clear();
    pool_.clear();
    size_ = 0;
  }

  const V* find(std::string_view key) const {
    if (slots_.empty()) return nullptr;
    uint64_t h = hash_bytes(key);
    size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.length == kEmpty) return nullptr;
      if (s.hash == h && s.length == key.size() &&
          std::memcmp(pool_.data() + s.offset, key.data(), key.size()) == 0)
        return &s.value;
    }
  }

  // Returns true when the key was new.
  bool insert(std::string_view key, const V& value, bool overwrite = false) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    uint64_t h = hash_bytes(key);
    size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (s.length == kEmpty) {
        s.hash = h;
        s.offset = pool_.size();
        s.length = static_cast<uint32_t>(key.size());
        s.value = value;
        pool_.append(key.data(), key.size());
        ++size_;
        return true;
      }
      if (s.hash == h && s.length == key.size() &&
          std::memcmp(pool_.data() + s.offset, key.data(), key.size()) == 0) {
        if (overwrite) s.value = value;
        return false;
      }
    }
  }

  template <typename F>
  void for_each(F fn) const {
    for (const Slot& s : slots_)
      if (s.length != kEmpty) fn(std::string_view(pool_.data() + s.offset, s.length), s.value);
  }

 private:
  static constexpr uint32_t kEmpty = 0xFFFFFFFFu;
  struct Slot {
    uint64_t hash = 0;
    uint64_t offset = 0;
    uint32_t length = kEmpty;
    V value{};
  };
  void grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.empty() ? 16 : old.size() * 2, Slot{});
    size_t mask = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.length == kEmpty) continue;
      size_t i = s.hash & mask;
      while (slots_[i].length != kEmpty) i = (i + 1) & mask;
      slots_[i] = s;
    }
  }
  std::vector<Slot> slots_;
  std::string pool_;
  size_t size_ = 0;
};

// uint64 -> V with a reserved empty key (UINT64_MAX).
template <typename V>
class U64Map {
 public:
  size_t size() const { return size_; }
  const V* find(uint64_t key) const {
    if (slots_.empty()) return nullptr;
    size_t mask = slots_.size() - 1;
    for (size_t i = hash_u64(key) & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.key == key) return &s.value;
      if (s.key == kEmpty) return nullptr;
    }
  }
  // Inserts or overwrites.
  void put(uint64_t key, const V& value) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    size_t mask = slots_.size() - 1;
    for (size_t i = hash_u64(key) & mask;; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (s.key == key) {
        s.value = value;
        return;
      }
      if (s.key == kEmpty) {
        s.key = key;
        s.value = value;
        ++size_;
        return;
      }
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~0ull;
  struct Slot {
    uint64_t key = kEmpty;
    V value{};
  };
  void grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.empty() ? 16 : old.size() * 2, Slot{});
    size_t mask = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.key == kEmpty) continue;
      size_t i = hash_u64(s.key) & mask;
      while (slots_[i].key != kEmpty) i = (i + 1) & mask;
      slots_[i] = s;
    }
  }
  std::vector<Slot> slots_;
  size_t size_ = 0;
};

}  // namespace moeforge::tokenizer
