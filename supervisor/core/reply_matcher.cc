#include "supervisor/core/reply_matcher.h"

#include <utility>

namespace wsvisor::core {

namespace {
// libstdc++'s default matcher backtracks, recursing once per input character: a valid 42-byte
// expression such as 20 nested groups under `*` overflows an 8 MiB stack on a 4096-byte reply, and
// `(x+x+)+y` needs about 2^n steps on n bytes. `__polynomial` (a libstdc++ extension) selects its
// breadth-first matcher instead: time O(reply x expression), recursion bounded by the expression.
// It refuses back-references when compiling, so checkExpression() rejects them up front.
#if defined(__GLIBCXX__)
constexpr auto kSyntax =
    std::regex::ECMAScript | std::regex::optimize | std::regex_constants::__polynomial;
#else
// Other standard libraries keep the hazard described above.
constexpr auto kSyntax = std::regex::ECMAScript | std::regex::optimize;
#endif
}  // namespace

std::optional<std::string> ReplyMatcher::checkExpression(const std::string& expect) {
  try {
    std::regex compiled(expect, kSyntax);
  } catch (const std::regex_error& e) {
    return std::string(e.what());
  }
  return std::nullopt;
}

ReplyMatcher::ReplyMatcher(std::string payload, const std::string& expect)
    : payload_(std::move(payload)) {
  if (!expect.empty()) {
    // Validation has checked the expression; a throw here would be a bug upstream of us.
    expect_ = std::make_shared<const std::regex>(expect, kSyntax);
  }
}

bool ReplyMatcher::matches(std::string_view reply) const {
  if (!expect_) return reply == payload_;
  // Heartbeat replies are short; longer ones never match, which bounds the matching time.
  if (reply.size() > kMaxRegexReplyBytes) return false;
  return std::regex_match(reply.begin(), reply.end(), *expect_);
}

}  // namespace wsvisor::core
