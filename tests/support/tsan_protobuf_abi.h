#pragma once

// Force-included (-include) into every C++ file of the ThreadSanitizer build by scripts/run-tsan.
//
// protobuf 3.21's MapFieldBase (google/protobuf/map_field.h) gains two members, seq1_ and seq2_,
// whenever __SANITIZE_THREAD__ is defined. Debian's libprotobuf and our generated wsvisor_proto
// library are compiled without -fsanitize=thread, so code compiled with it would disagree with
// them about the layout of every map field (EndpointSpec.labels) and crash reading one (a SEGV in
// Map::begin() under EndpointSpec::ByteSizeLong()). map_field.h is therefore read here, once,
// with the macro hidden, so that every translation unit sees the layout the libraries were built
// with. The standard library's configuration is read first, with the macro visible, so that
// libstdc++ keeps its ThreadSanitizer-aware shared_ptr (_GLIBCXX_TSAN) everywhere.

#include <cstddef>  // bits/c++config.h: sets _GLIBCXX_TSAN while __SANITIZE_THREAD__ is defined

#pragma push_macro("__SANITIZE_THREAD__")
#undef __SANITIZE_THREAD__
#include <google/protobuf/map_field.h>
#pragma pop_macro("__SANITIZE_THREAD__")
