#include "service/ctl/nearest_name.h"

#include <algorithm>
#include <cctype>

namespace wsvisor::ctl {

namespace {

// Lower case, without leading dashes: what is compared.
std::string core(std::string_view name) {
  const size_t begin = std::min(name.find_first_not_of('-'), name.size());
  std::string text(name.substr(begin));
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

size_t optimalStringAlignment(const std::string& a, const std::string& b) {
  // d[i][j]: distance between the first i characters of a and the first j of b.
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t substitution = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + substitution});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace

std::optional<std::string> nearestName(std::string_view typed,
                                       const std::vector<std::string_view>& known) {
  const std::string wanted = core(typed);
  if (wanted.empty()) return std::nullopt;
  const size_t allowed = std::clamp<size_t>(wanted.size() / 3, 1, 3);
  std::optional<std::string> best;
  size_t best_distance = allowed + 1;
  for (std::string_view name : known) {
    const size_t distance = optimalStringAlignment(wanted, core(name));
    if (distance < best_distance && distance < wanted.size()) {
      best = std::string(name);
      best_distance = distance;
    }
  }
  return best;
}

}  // namespace wsvisor::ctl
