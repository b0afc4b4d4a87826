// GoogleTest's main for every test binary, except that a binary whose every
// selected test skipped exits 77, which meson reports as SKIP instead of OK.
// (Meson 1.0's gtest protocol reads only the exit status; its XML goes to the
// JUnit log.)
#include <gtest/gtest.h>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const int status = RUN_ALL_TESTS();
  const ::testing::UnitTest& unit = *::testing::UnitTest::GetInstance();
  const bool all_skipped =
      unit.test_to_run_count() > 0 && unit.skipped_test_count() == unit.test_to_run_count();
  return status == 0 && all_skipped ? 77 : status;
}
