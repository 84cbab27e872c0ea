# Shared build settings: one INTERFACE target carries warnings and sanitizers to every wsvisor
# target, and one function adds a test binary.

add_library(wsvisor_build_options INTERFACE)
target_compile_options(wsvisor_build_options INTERFACE
  -Wall -Wextra -Werror -Wnon-virtual-dtor -Woverloaded-virtual)
target_compile_definitions(wsvisor_build_options INTERFACE ASIO_STANDALONE _WEBSOCKETPP_CPP11_STL_)
target_include_directories(wsvisor_build_options INTERFACE ${PROJECT_SOURCE_DIR})

if(WSVISOR_SANITIZE)
  string(REPLACE "," ";" _sanitizers "${WSVISOR_SANITIZE}")
  foreach(_s IN LISTS _sanitizers)
    target_compile_options(wsvisor_build_options INTERFACE -fsanitize=${_s})
    target_link_options(wsvisor_build_options INTERFACE -fsanitize=${_s})
    if(_s STREQUAL "thread")
      # g++ 12 warns that Asio's std::atomic_thread_fence is not instrumented by TSan.
      target_compile_options(wsvisor_build_options INTERFACE -Wno-error=tsan -Wno-tsan)
    endif()
  endforeach()
  target_compile_options(wsvisor_build_options INTERFACE -fno-omit-frame-pointer
    -fno-sanitize-recover=all)
endif()

# wsvisor_add_test(NAME name SOURCES a.cc b.cc LIBS lib1 lib2 [LABELS l1] [TIMEOUT s] [ONE_TEST]
#                  [TEST_PREFIX p.])
# Builds one gtest binary and registers each of its tests with ctest. With ONE_TEST the whole
# binary is one ctest test instead: ctest runs every registered test in a process of its own, which
# is wrong for cases that share an expensive fixture (a real etcd cluster takes seconds to start).
# TEST_PREFIX goes before each ctest name: for a source built into two binaries.
function(wsvisor_add_test)
  cmake_parse_arguments(ARG "ONE_TEST" "NAME;TIMEOUT;TEST_PREFIX" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SOURCES})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_LIBS} GTest::gmock_main wsvisor_build_options)
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  if(ARG_ONE_TEST)
    add_test(NAME ${ARG_NAME} COMMAND ${ARG_NAME})
    set_tests_properties(${ARG_NAME} PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "${ARG_LABELS}")
    return()
  endif()
  gtest_discover_tests(${ARG_NAME}
    TEST_PREFIX "${ARG_TEST_PREFIX}"
    DISCOVERY_TIMEOUT 60
    PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "${ARG_LABELS}")
endfunction()
