# The include rules of the source folders, checked on every build.
#
# Each folder's CMakeLists.txt says, next to the comment that says what the folder owns, which
# other places its files may include:
#
#   wsvisor_folder_may_include(<folder> <allowed>...)
#
# <folder> is the folder's path from the repository root ("service/api"); its own files may always
# include each other. An <allowed> entry is
#   "dir/"     the files directly in dir (not in its subfolders),
#   "dir/**"   dir and everything below it,
#   "path.h"   that one file.
# Only `#include "..."` lines of the folder's own .h and .cc files are checked (not its
# subfolders', which have rules of their own). A quoted include that no entry allows fails the
# build, naming the file, the line and the rule (cmake/CheckLayering.cmake).

function(wsvisor_folder_may_include folder)
  string(JOIN "," _allowed ${ARGN})
  set_property(GLOBAL APPEND PROPERTY WSVISOR_LAYERING_RULES "${folder}/|${_allowed}")
endfunction()

# Called once, after every folder has declared its rules: adds the check to the default target.
function(wsvisor_add_layering_check)
  get_property(_rules GLOBAL PROPERTY WSVISOR_LAYERING_RULES)
  # One line per folder: "<folder>/|<allowed>,<allowed>,...". Rewritten only when it changes.
  set(_rules_file "${PROJECT_BINARY_DIR}/layering_rules.txt")
  string(REPLACE ";" "\n" _text "${_rules}")
  file(CONFIGURE OUTPUT "${_rules_file}" CONTENT "${_text}\n")
  add_custom_target(wsvisor_layering_check ALL
    COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${PROJECT_SOURCE_DIR} -DRULES_FILE=${_rules_file}
            -P ${PROJECT_SOURCE_DIR}/cmake/CheckLayering.cmake
    COMMENT "Checking the include rules of the source folders"
    VERBATIM)
endfunction()
