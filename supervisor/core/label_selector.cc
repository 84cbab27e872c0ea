#include "supervisor/core/label_selector.h"

namespace wsvisor::core {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

}  // namespace

std::optional<LabelSelector> LabelSelector::parse(std::string_view text, std::string& error) {
  LabelSelector selector;
  if (trim(text).empty()) return selector;
  constexpr size_t kMaxRequirements = 64;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view part = trim(text.substr(start, comma - start));
    start = comma + 1;
    if (part.empty()) {
      error = "has an empty requirement";
      return std::nullopt;
    }
    Requirement req;
    // The operator is the first '=' (with a '!' before it, or a second '=' after it): the key
    // ends there, and the value may contain '=' and '!=' ("expr=a!=b" is expr equal to "a!=b").
    size_t op = part.find('=');
    size_t op_len = 1;
    if (op != std::string_view::npos) {
      if (op > 0 && part[op - 1] == '!') {
        --op;
        op_len = 2;
        req.equal = false;
      } else if (op + 1 < part.size() && part[op + 1] == '=') {
        op_len = 2;  // accept `==` as Kubernetes does
      }
    }
    if (op == std::string_view::npos) {
      error = "requirement '" + std::string(part) + "' must be key=value or key!=value";
      return std::nullopt;
    }
    req.key = std::string(trim(part.substr(0, op)));
    req.value = std::string(trim(part.substr(op + op_len)));
    if (req.key.empty()) {
      error = "requirement '" + std::string(part) + "' has an empty key";
      return std::nullopt;
    }
    selector.requirements_.push_back(std::move(req));
    if (selector.requirements_.size() > kMaxRequirements) {
      error = "has more than 64 requirements";
      return std::nullopt;
    }
    if (comma == text.size()) break;
  }
  return selector;
}

bool LabelSelector::matches(const std::map<std::string, std::string>& labels) const {
  for (const Requirement& req : requirements_) {
    const auto it = labels.find(req.key);
    const bool has_value = it != labels.end() && it->second == req.value;
    if (has_value != req.equal) return false;
  }
  return true;
}

}  // namespace wsvisor::core
