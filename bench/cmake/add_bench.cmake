# Adds bench/ to a wsvisor build without touching the top-level CMakeLists.txt. CMake includes
# this file right after project(wsvisor) when configured with
#   -DCMAKE_PROJECT_wsvisor_INCLUDE=<repo>/bench/cmake/add_bench.cmake
# bench/CMakeLists.txt finds its own packages and uses no wsvisor target (it compiles the core
# sources it needs and generates its own gRPC stubs), so it can be added this early.
# bench/run configures its build directory this way.
get_filename_component(_wsvisor_bench_dir "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
add_subdirectory("${_wsvisor_bench_dir}" "${CMAKE_BINARY_DIR}/bench")
