#include "service/ctl/text_table.h"

#include <algorithm>
#include <utility>

namespace wsvisor::ctl {

namespace {

constexpr size_t kColumnGap = 2;

// Code points, by counting every byte that does not continue a UTF-8 sequence.
size_t displayWidth(const std::string& text) {
  return static_cast<size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

void fitWidths(const std::vector<std::string>& row, std::vector<size_t>& widths) {
  for (size_t i = 0; i < widths.size(); ++i) {
    widths[i] = std::max(widths[i], displayWidth(row[i]));
  }
}

}  // namespace

TextTable::TextTable(std::vector<std::string> header) : widths_(header.size(), 0) {
  rows_.push_back(std::move(header));
}

void TextTable::addRow(std::vector<std::string> cells) {
  cells.resize(rows_.front().size());
  rows_.push_back(std::move(cells));
}

void TextTable::reserveWidth(size_t column, size_t width) {
  if (column < widths_.size()) widths_[column] = std::max(widths_[column], width);
}

void TextTable::printRow(const std::vector<std::string>& row, std::ostream& out) const {
  std::string line;
  for (size_t i = 0; i < row.size(); ++i) {
    line += row[i];
    if (i + 1 < row.size()) line.append(widths_[i] - displayWidth(row[i]) + kColumnGap, ' ');
  }
  // Trailing empty cells would leave trailing spaces.
  while (!line.empty() && line.back() == ' ') line.pop_back();
  out << line << '\n';
}

void TextTable::print(std::ostream& out) const {
  TextTable fitted(rows_.front());
  for (const auto& row : rows_) fitWidths(row, fitted.widths_);
  for (const auto& row : rows_) fitted.printRow(row, out);
}

void TextTable::printNewRows(std::ostream& out) {
  const size_t first = header_printed_ ? 1 : 0;
  for (size_t i = first; i < rows_.size(); ++i) fitWidths(rows_[i], widths_);
  for (size_t i = first; i < rows_.size(); ++i) printRow(rows_[i], out);
  header_printed_ = true;
  rows_.resize(1);
}

}  // namespace wsvisor::ctl
