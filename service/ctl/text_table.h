#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace wsvisor::ctl {

// A plain-text table for terminals: columns left-aligned and separated by at least two spaces,
// widths fitted to the widest cell, no trailing spaces (so the last column may hold long free
// text without padding every line). Widths count UTF-8 code points, not bytes.
class TextTable {
 public:
  explicit TextTable(std::vector<std::string> header);

  // Rows shorter than the header are padded with empty cells; longer ones are cut.
  void addRow(std::vector<std::string> cells);

  void print(std::ostream& out) const;

 private:
  std::vector<std::vector<std::string>> rows_;  // rows_[0] is the header
};

}  // namespace wsvisor::ctl
