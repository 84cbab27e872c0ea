#include "supervisor/core/reply_matcher.h"

#include <utility>

namespace wsvisor::core {

namespace {
constexpr auto kSyntax = std::regex::ECMAScript | std::regex::optimize;
}

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
  // libstdc++'s regex engine recurses per input character: a long hostile reply could exhaust
  // the io thread's stack. Heartbeat replies are short; longer ones never match.
  if (reply.size() > kMaxRegexReplyBytes) return false;
  return std::regex_match(reply.begin(), reply.end(), *expect_);
}

}  // namespace wsvisor::core
