#pragma once

#include <cstddef>
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

  // printNewRows() makes `column` at least `width` wide from the start: a column whose values
  // come from a known set keeps its width however the rows that came first happened to be.
  void reserveWidth(size_t column, size_t width);

  void print(std::ostream& out) const;

  // For a table whose rows keep arriving (`watch`): prints the rows added since the last call,
  // the header with the first call, in columns fitted to them and to every row printed before.
  // A column never narrows: a wider cell widens it from then on, and lines already printed stay
  // as they were. Printed rows are not kept. Use either this or print(), not both.
  void printNewRows(std::ostream& out);

 private:
  void printRow(const std::vector<std::string>& row, std::ostream& out) const;

  std::vector<std::vector<std::string>> rows_;  // rows_[0] is the header
  std::vector<size_t> widths_;                  // printNewRows(): the widths so far
  bool header_printed_ = false;                 // printNewRows() printed the header
};

}  // namespace wsvisor::ctl
