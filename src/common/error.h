// The one error type moeforge throws for anything a user can cause (bad files, bad flags).
// The CLI prints its message on one line and exits non-zero; never abort on user input.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace moeforge {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Concatenates any streamable values into one string: cat("tensor '", name, "' has ", n, " dims").
template <typename... Parts>
std::string cat(Parts&&... parts) {
  std::ostringstream out;
  (out << ... << std::forward<Parts>(parts));
  return out.str();
}

template <typename... Parts>
[[noreturn]] void fail(Parts&&... parts) {
  throw Error(cat(std::forward<Parts>(parts)...));
}

}  // namespace moeforge
