#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wsvisor::core {

// A label selector as written by callers: comma-separated requirements that must all hold,
// each `key=value` (the label is present with that value) or `key!=value` (it is absent or has
// another value). Surrounding spaces are ignored. The empty selector matches everything.
class LabelSelector {
 public:
  // Parses `text`, or returns nullopt and sets `error`.
  static std::optional<LabelSelector> parse(std::string_view text, std::string& error);

  bool matches(const std::map<std::string, std::string>& labels) const;
  bool empty() const { return requirements_.empty(); }

 private:
  struct Requirement {
    std::string key;
    std::string value;
    bool equal = true;
  };
  std::vector<Requirement> requirements_;
};

}  // namespace wsvisor::core
