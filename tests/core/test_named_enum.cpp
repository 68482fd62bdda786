// core/named_enum.h: names and values both ways, the error that names the option and the choices,
// the --help text, and a value missing from its table reported as a bug.
#include <gtest/gtest.h>

#include "core/check.h"
#include "core/named_enum.h"

namespace hcl::test_enum {
enum class Colour { Red, Green, Blue, Unnamed };
}  // namespace hcl::test_enum

template <>
struct hcl::EnumNames<hcl::test_enum::Colour> {
  static constexpr NamedValue<test_enum::Colour> table[] = {
      {test_enum::Colour::Red, "red"},
      {test_enum::Colour::Green, "green", "the default"},
      {test_enum::Colour::Blue, "blue"},
  };
};

namespace hcl {
namespace {

using test_enum::Colour;

TEST(NamedEnum, NamesAndValuesBothWays) {
  EXPECT_STREQ(name_of(Colour::Red), "red");
  EXPECT_STREQ(name_of(Colour::Blue), "blue");
  EXPECT_EQ(parse<Colour>("colour", "green"), Colour::Green);
  EXPECT_EQ(find_named<Colour>("blue"), Colour::Blue);
  EXPECT_FALSE(find_named<Colour>("Blue").has_value());  // names are exact
  EXPECT_TRUE(is_named_enum_v<Colour>);
  EXPECT_FALSE(is_named_enum_v<int>);
}

TEST(NamedEnum, UnknownValueNamesTheOptionAndTheChoices) {
  try {
    parse<Colour>("colour", "purple");
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "--colour: unknown value 'purple' (expected one of red, green or blue)");
  }
}

TEST(NamedEnum, ChoicesTextForHelp) {
  EXPECT_EQ(choices_text<Colour>(), "red, green or blue");
  EXPECT_EQ(choices_text<Colour>(true), "red, green (the default) or blue");
  EXPECT_EQ(help_with_choices<Colour>("paint"), "paint: red, green (the default) or blue");
  EXPECT_EQ(help_with_choices<Colour>(""), "red, green (the default) or blue");
}

TEST(NamedEnum, ValueWithoutANameIsAnInternalError) { EXPECT_THROW(name_of(Colour::Unnamed), InternalError); }

}  // namespace
}  // namespace hcl
