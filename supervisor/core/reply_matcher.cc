#include "supervisor/core/reply_matcher.h"

#include <algorithm>
#include <utility>

namespace wsvisor::core {

namespace {
// libstdc++'s default matcher backtracks, recursing once per input character: a valid 42-byte
// expression such as 20 nested groups under `*` overflows an 8 MiB stack on a 4096-byte reply, and
// `(x+x+)+y` needs about 2^n steps on n bytes. `__polynomial` (a libstdc++ extension) selects its
// breadth-first matcher instead: time O(reply x expression), recursion bounded by the expression.
// It refuses back-references when compiling, so checkExpression() rejects them up front.
//
// Two things still escape that bound, so checkExpression() measures the expression first
// (ExpressionCost below):
// - A lookahead starts a second matcher over the rest of the reply at every position where it is
//   reached: `(?:(?=.*a)a)*` takes reply^2 steps, and each nested lookahead multiplies by the
//   reply's length again (two of them: minutes on a 4096-byte reply). At the start of the
//   expression a lookahead is reached once, at the first byte, which stays linear.
// - The expression grows with counted repetitions: `(?:a*){24000}` is 14 bytes and takes seconds
//   per 4096-byte reply. GCC 12's compiler also reads the count (and a back-reference's number)
//   into a long without an overflow check, which is undefined behaviour from 20 digits on.
#if defined(__GLIBCXX__)
constexpr auto kSyntax =
    std::regex::ECMAScript | std::regex::optimize | std::regex_constants::__polynomial;
#else
// Other standard libraries keep the hazard described above.
constexpr auto kSyntax = std::regex::ECMAScript | std::regex::optimize;
#endif

// A conservative reading of an ECMAScript expression, as libstdc++'s scanner splits it, for the
// hazards above only: syntax errors are left to the compiler. Sizes count elements (a character,
// an escape, a bracket expression, a group) with counted repetitions written out, saturating
// above kMaxExpandedElements so that no count overflows.
class ExpressionCost {
 public:
  explicit ExpressionCost(std::string_view expression) : e_(expression) {}

  std::optional<std::string> check() {
    const uint64_t size = disjunction(/*top_level=*/true, /*in_lookahead=*/false);
    if (error_) return error_;
    if (pos_ < e_.size()) return std::string("unbalanced ')'");
    if (size > ReplyMatcher::kMaxExpandedElements) {
      return "counted repetitions make it longer than " +
             std::to_string(ReplyMatcher::kMaxExpandedElements) + " elements written out";
    }
    return std::nullopt;
  }

 private:
  static constexpr uint64_t kSaturated = ReplyMatcher::kMaxExpandedElements + 1;

  static uint64_t add(uint64_t a, uint64_t b) { return std::min(a + b, kSaturated); }
  static uint64_t times(uint64_t a, uint64_t b) {
    return a == 0 || b == 0 ? 0 : std::min(a * b, kSaturated);
  }

  bool at(std::string_view token) const { return e_.substr(pos_, token.size()) == token; }
  static bool isDigit(char c) { return c >= '0' && c <= '9'; }

  // Alternatives up to the closing ')' of the enclosing group (not consumed) or the end.
  uint64_t disjunction(bool top_level, bool in_lookahead) {
    uint64_t size = alternative(top_level, in_lookahead);
    while (!error_ && at("|")) {
      ++pos_;
      size = add(size, alternative(top_level, in_lookahead));
    }
    return size;
  }

  uint64_t alternative(bool top_level, bool in_lookahead) {
    uint64_t size = 0;
    uint64_t last = 0;          // the element a following quantifier repeats
    bool at_start = top_level;  // nothing but lookaheads so far: at the reply's first byte
    while (!error_ && pos_ < e_.size() && e_[pos_] != '|' && e_[pos_] != ')') {
      const char c = e_[pos_];
      if (c == '{') {
        const uint64_t count = braceCount();
        size = add(size, times(last, count - 1));
        last = times(last, count);
        continue;
      }
      if (c == '*' || c == '+' || c == '?') {  // a constant factor, however they nest
        ++pos_;
        continue;
      }
      if (c == '(') {
        const bool lookahead = at("(?=") || at("(?!");
        if (lookahead && (!at_start || in_lookahead)) {
          error_ = "a lookahead ((?= or (?!) is only supported at the start of the expression";
          return size;
        }
        pos_ += lookahead || at("(?:") ? 3 : 1;
        last = add(1, disjunction(false, in_lookahead || lookahead));
        if (error_) return size;
        if (!at(")")) {
          error_ = "unbalanced '('";
          return size;
        }
        ++pos_;
        at_start = at_start && lookahead;
      } else {
        at_start = at_start && c == '^';  // also only at the first byte
        skipAtom();
        last = 1;
      }
      size = add(size, last);
    }
    return size;
  }

  // One character, escape or bracket expression.
  void skipAtom() {
    const char c = e_[pos_];
    if (c == '\\') {
      checkEscape();
      pos_ = std::min(pos_ + 2, e_.size());
      return;
    }
    ++pos_;
    if (c != '[') return;
    // ECMAScript: the first unescaped ']' ends the expression, except inside [:class:], [.x.]
    // and [=x=], which end at ":]", ".]" and "=]".
    while (!error_ && pos_ < e_.size() && e_[pos_] != ']') {
      if (e_[pos_] == '\\') {
        checkEscape();
        pos_ += 2;
      } else if (e_[pos_] == '[' && pos_ + 1 < e_.size() &&
                 (e_[pos_ + 1] == ':' || e_[pos_ + 1] == '.' || e_[pos_ + 1] == '=')) {
        const char closing[] = {e_[pos_ + 1], ']', '\0'};
        const size_t end = e_.find(closing, pos_ + 2);
        pos_ = end == std::string_view::npos ? e_.size() : end + 2;
      } else {
        ++pos_;
      }
    }
    pos_ = std::min(pos_ + 1, e_.size());
  }

  // At a backslash: \1 to \9 start a back-reference, whatever digits follow.
  void checkEscape() {
    if (pos_ + 1 < e_.size() && isDigit(e_[pos_ + 1]) && e_[pos_ + 1] != '0') {
      error_ = "back-references are not supported";
    }
  }

  // At '{': the repetition count of {m}, {m,} or {m,n}, saturated; 1 when it is not one (the
  // compiler reports that).
  uint64_t braceCount() {
    ++pos_;
    const uint64_t low = number();
    uint64_t high = low;
    if (at(",")) {
      ++pos_;
      high = pos_ < e_.size() && isDigit(e_[pos_]) ? number() : add(low, 1);
    }
    if (at("}")) ++pos_;
    return std::max<uint64_t>(1, std::max(low, high));
  }

  uint64_t number() {
    uint64_t value = 0;
    while (pos_ < e_.size() && isDigit(e_[pos_])) {
      value = add(times(value, 10), static_cast<uint64_t>(e_[pos_] - '0'));
      ++pos_;
    }
    return value;
  }

  std::string_view e_;
  size_t pos_ = 0;
  std::optional<std::string> error_;
};

}  // namespace

std::optional<std::string> ReplyMatcher::checkExpression(const std::string& expect) {
  if (auto error = ExpressionCost(expect).check()) return error;
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
