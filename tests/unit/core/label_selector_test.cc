// Parsing and matching of label selectors ("env=prod,tier!=db").
#include "supervisor/core/label_selector.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>

namespace wsvisor::core {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Labels = std::map<std::string, std::string>;

// Parses a selector the test expects to be valid.
LabelSelector parseValid(const std::string& text) {
  std::string error;
  std::optional<LabelSelector> selector = LabelSelector::parse(text, error);
  EXPECT_TRUE(selector.has_value()) << "'" << text << "': " << error;
  EXPECT_THAT(error, IsEmpty());
  return selector.value_or(LabelSelector{});
}

// Parses a selector the test expects to be rejected and returns the error.
std::string parseError(const std::string& text) {
  std::string error;
  EXPECT_FALSE(LabelSelector::parse(text, error).has_value()) << "'" << text << "' was accepted";
  EXPECT_THAT(error, ::testing::Not(IsEmpty()));
  return error;
}

bool selects(const std::string& text, const Labels& labels) {
  return parseValid(text).matches(labels);
}

TEST(LabelSelectorTest, EmptySelectorIsEmpty) { EXPECT_TRUE(parseValid("").empty()); }

TEST(LabelSelectorTest, BlankSelectorIsEmpty) { EXPECT_TRUE(parseValid("   ").empty()); }

TEST(LabelSelectorTest, EmptySelectorMatchesEverything) {
  EXPECT_TRUE(selects("", {}));
  EXPECT_TRUE(selects("", {{"env", "prod"}}));
}

TEST(LabelSelectorTest, SelectorWithARequirementIsNotEmpty) {
  EXPECT_FALSE(parseValid("env=prod").empty());
}

TEST(LabelSelectorTest, EqualityMatchesTheSameValue) {
  EXPECT_TRUE(selects("env=prod", {{"env", "prod"}, {"tier", "web"}}));
}

TEST(LabelSelectorTest, EqualityRejectsAnotherValue) {
  EXPECT_FALSE(selects("env=prod", {{"env", "staging"}}));
}

TEST(LabelSelectorTest, EqualityRejectsAMissingLabel) {
  EXPECT_FALSE(selects("env=prod", {{"tier", "web"}}));
}

TEST(LabelSelectorTest, EqualityIsCaseSensitive) {
  EXPECT_FALSE(selects("env=prod", {{"env", "Prod"}}));
  EXPECT_FALSE(selects("env=prod", {{"Env", "prod"}}));
}

TEST(LabelSelectorTest, EqualityDoesNotMatchAPrefix) {
  EXPECT_FALSE(selects("env=prod", {{"env", "production"}}));
}

TEST(LabelSelectorTest, DoubleEqualsMeansEquality) {
  EXPECT_TRUE(selects("env==prod", {{"env", "prod"}}));
  EXPECT_FALSE(selects("env==prod", {{"env", "staging"}}));
}

TEST(LabelSelectorTest, InequalityMatchesAnotherValue) {
  EXPECT_TRUE(selects("env!=prod", {{"env", "staging"}}));
}

TEST(LabelSelectorTest, InequalityMatchesAMissingLabel) { EXPECT_TRUE(selects("env!=prod", {})); }

TEST(LabelSelectorTest, InequalityRejectsTheSameValue) {
  EXPECT_FALSE(selects("env!=prod", {{"env", "prod"}}));
}

TEST(LabelSelectorTest, EmptyValueMatchesOnlyAPresentEmptyLabel) {
  EXPECT_TRUE(selects("env=", {{"env", ""}}));
  EXPECT_FALSE(selects("env=", {}));
  EXPECT_FALSE(selects("env=", {{"env", "prod"}}));
}

TEST(LabelSelectorTest, AllRequirementsMustHold) {
  const LabelSelector selector = parseValid("env=prod,tier!=db");
  EXPECT_TRUE(selector.matches({{"env", "prod"}, {"tier", "web"}}));
  EXPECT_TRUE(selector.matches({{"env", "prod"}}));
  EXPECT_FALSE(selector.matches({{"env", "prod"}, {"tier", "db"}}));
  EXPECT_FALSE(selector.matches({{"env", "staging"}, {"tier", "web"}}));
}

TEST(LabelSelectorTest, ContradictoryRequirementsMatchNothing) {
  const LabelSelector selector = parseValid("env=prod,env=staging");
  EXPECT_FALSE(selector.matches({{"env", "prod"}}));
  EXPECT_FALSE(selector.matches({{"env", "staging"}}));
}

TEST(LabelSelectorTest, SpacesAroundRequirementsAreIgnored) {
  EXPECT_TRUE(selects("  env=prod ,  tier=web  ", {{"env", "prod"}, {"tier", "web"}}));
}

TEST(LabelSelectorTest, SpacesAroundOperatorsAreIgnored) {
  EXPECT_TRUE(selects("env = prod", {{"env", "prod"}}));
  EXPECT_TRUE(selects("env != prod", {{"env", "staging"}}));
  EXPECT_TRUE(selects("env == prod", {{"env", "prod"}}));
}

// The key ends at the first operator; label values may contain '=' and '!='.
TEST(LabelSelectorTest, ValueMayContainAnEqualsSign) {
  EXPECT_TRUE(selects("query=a=b", {{"query", "a=b"}}));
  EXPECT_FALSE(selects("query=a=b", {{"query", "a"}}));
}

TEST(LabelSelectorTest, InequalityValueMayContainAnEqualsSign) {
  EXPECT_TRUE(selects("query!=a=b", {{"query", "a"}}));
  EXPECT_FALSE(selects("query!=a=b", {{"query", "a=b"}}));
}

TEST(LabelSelectorTest, EqualityValueMayContainAnInequalitySign) {
  EXPECT_TRUE(selects("expr=a!=b", {{"expr", "a!=b"}}));
  EXPECT_FALSE(selects("expr=a!=b", {{"expr", "c"}}));
  EXPECT_FALSE(selects("expr=a!=b", {}));
}

TEST(LabelSelectorTest, InequalityValueMayContainAnInequalitySign) {
  EXPECT_TRUE(selects("expr!=a!=b", {{"expr", "c"}}));
  EXPECT_FALSE(selects("expr!=a!=b", {{"expr", "a!=b"}}));
}

TEST(LabelSelectorTest, KeysMayContainDotsSlashesAndDashes) {
  EXPECT_TRUE(selects("app.kubernetes.io/part-of=edge", {{"app.kubernetes.io/part-of", "edge"}}));
}

TEST(LabelSelectorTest, RequirementWithoutOperatorIsRejected) {
  EXPECT_THAT(parseError("env"), HasSubstr("key=value"));
}

TEST(LabelSelectorTest, EmptyKeyIsRejected) {
  EXPECT_THAT(parseError("=prod"), HasSubstr("empty key"));
  EXPECT_THAT(parseError("!=prod"), HasSubstr("empty key"));
  EXPECT_THAT(parseError(" = prod"), HasSubstr("empty key"));
}

TEST(LabelSelectorTest, TrailingCommaIsAnEmptyRequirement) {
  EXPECT_THAT(parseError("env=prod,"), HasSubstr("empty requirement"));
}

TEST(LabelSelectorTest, LeadingCommaIsAnEmptyRequirement) {
  EXPECT_THAT(parseError(",env=prod"), HasSubstr("empty requirement"));
}

TEST(LabelSelectorTest, DoubleCommaIsAnEmptyRequirement) {
  EXPECT_THAT(parseError("env=prod,,tier=web"), HasSubstr("empty requirement"));
}

TEST(LabelSelectorTest, BlankRequirementBetweenCommasIsRejected) {
  EXPECT_THAT(parseError("env=prod,   ,tier=web"), HasSubstr("empty requirement"));
}

TEST(LabelSelectorTest, SixtyFourRequirementsAreAccepted) {
  std::string text;
  for (int i = 0; i < 64; ++i) text += (i == 0 ? "" : ",") + ("k" + std::to_string(i)) + "=v";
  EXPECT_FALSE(parseValid(text).empty());
}

TEST(LabelSelectorTest, SixtyFiveRequirementsAreRejected) {
  std::string text;
  for (int i = 0; i < 65; ++i) text += (i == 0 ? "" : ",") + ("k" + std::to_string(i)) + "=v";
  EXPECT_THAT(parseError(text), HasSubstr("64"));
}

TEST(LabelSelectorTest, ParseLeavesErrorUntouchedOnSuccess) {
  std::string error = "unchanged";
  EXPECT_TRUE(LabelSelector::parse("env=prod", error).has_value());
  EXPECT_EQ(error, "unchanged");
}

}  // namespace
}  // namespace wsvisor::core
