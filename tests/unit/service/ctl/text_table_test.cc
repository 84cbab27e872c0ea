// Column layout of the plain-text tables printed by `get`, `list` and `watch`.
#include "service/ctl/text_table.h"

#include <gtest/gtest.h>

#include <sstream>

namespace wsvisor::ctl {
namespace {

std::string print(const TextTable& table) {
  std::ostringstream out;
  table.print(out);
  return out.str();
}

TEST(TextTableTest, AlignsColumnsToTheWidestCellWithoutTrailingSpaces) {
  TextTable table({"ID", "HEALTH", "NOTE"});
  table.addRow({"a-long-id", "healthy", "x"});
  table.addRow({"b", "unknown", ""});
  EXPECT_EQ(print(table),
            "ID         HEALTH   NOTE\n"
            "a-long-id  healthy  x\n"
            "b          unknown\n");
}

TEST(TextTableTest, HeaderAloneWhenThereAreNoRows) {
  EXPECT_EQ(print(TextTable({"ID", "URL"})), "ID  URL\n");
}

TEST(TextTableTest, ShortRowsArePaddedAndLongRowsCut) {
  TextTable table({"A", "B"});
  table.addRow({"1"});
  table.addRow({"1", "2", "3"});
  EXPECT_EQ(print(table), "A  B\n1\n1  2\n");
}

TEST(TextTableTest, WidthCountsCodePointsNotBytes) {
  TextTable table({"X", "Y"});
  table.addRow({"\xC2\xB5\xC2\xB5", "1"});  // "µµ": 4 bytes, 2 columns
  EXPECT_EQ(print(table), "X   Y\n\xC2\xB5\xC2\xB5  1\n");
}

TEST(TextTableTest, RowsPrintedAsTheyComeKeepTheirColumnsAndOnlyWidenThem) {
  TextTable table({"ID", "HEALTH", "NOTE"});
  table.addRow({"a-long-id", "healthy", "x"});
  std::ostringstream out;
  table.printNewRows(out);
  EXPECT_EQ(out.str(),
            "ID         HEALTH   NOTE\n"
            "a-long-id  healthy  x\n");
  out.str("");
  table.printNewRows(out);  // nothing new
  EXPECT_EQ(out.str(), "");
  table.addRow({"b", "unknown", "y"});
  table.printNewRows(out);
  EXPECT_EQ(out.str(), "b          unknown  y\n");  // not narrowed to "b"
  out.str("");
  table.addRow({"c", "unknown->healthy", "z"});
  table.printNewRows(out);
  EXPECT_EQ(out.str(), "c          unknown->healthy  z\n");
  out.str("");
  table.addRow({"d", "healthy", "w"});
  table.printNewRows(out);
  EXPECT_EQ(out.str(), "d          healthy           w\n");  // widened for good
}

TEST(TextTableTest, AReservedWidthHoldsFromTheFirstRowsPrinted) {
  TextTable table({"ID", "EVENT", "NOTE"});
  table.reserveWidth(1, 12);
  table.reserveWidth(7, 99);  // no such column: ignored
  table.addRow({"a", "changed", "x"});
  std::ostringstream out;
  table.printNewRows(out);
  table.addRow({"b", "unregistered", "y"});
  table.printNewRows(out);
  EXPECT_EQ(out.str(),
            "ID  EVENT         NOTE\n"
            "a   changed       x\n"
            "b   unregistered  y\n");
}

}  // namespace
}  // namespace wsvisor::ctl
