// The doctest runner. Run all: build/tests/hcgrad_tests; one case: -tc="matmul*"; list: -ltc.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
