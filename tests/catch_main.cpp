// Catch2's main, compiled once for every unit-test binary (its implementation is most of a
// test build's compile time).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
