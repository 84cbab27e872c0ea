#pragma once

#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <string_view>

namespace wsvisor::core {

// Decides whether a TEXT-mode reply answers the heartbeat: equal to the payload when no
// expectation is given, otherwise a full match of the ECMAScript regular expression `expect`.
class ReplyMatcher {
 public:
  // Replies longer than this never match an expression (see matches()).
  static constexpr size_t kMaxRegexReplyBytes = 4096;

  // Returns an error message when `expect` is not a valid regular expression.
  static std::optional<std::string> checkExpression(const std::string& expect);

  ReplyMatcher(std::string payload, const std::string& expect);

  bool matches(std::string_view reply) const;

 private:
  std::string payload_;
  // Set only when an expectation was given; compiled once per policy, not per reply.
  std::shared_ptr<const std::regex> expect_;
};

}  // namespace wsvisor::core
