#pragma once

#include <cstdio>
#include <cstdlib>

// An invariant of the code under test: when it does not hold, the input is a finding. Prints the
// condition and aborts, which libFuzzer reports as a crash and saves the input for.
#define WSVISOR_FUZZ_CHECK(condition)                                                        \
  do {                                                                                       \
    if (!(condition)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (false)
