#pragma once

#include <cstdint>
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
  // The most elements (characters, classes, groups) an expression may have with its counted
  // repetitions written out: `(ab){3}` has 9. As many as the longest expression the API takes
  // (1024 bytes), so that no count makes matching slower than such an expression.
  static constexpr uint64_t kMaxExpandedElements = 1024;

  // Returns an error message when `expect` is not a valid regular expression, or one that would
  // not match in time linear in the reply's length: back-references, lookaheads (`(?=`, `(?!`)
  // anywhere but at the start, or more than kMaxExpandedElements elements written out.
  static std::optional<std::string> checkExpression(const std::string& expect);

  ReplyMatcher(std::string payload, const std::string& expect);

  bool matches(std::string_view reply) const;

 private:
  std::string payload_;
  // Set only when an expectation was given; compiled once per policy, not per reply.
  std::shared_ptr<const std::regex> expect_;
};

}  // namespace wsvisor::core
