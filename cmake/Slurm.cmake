# Finds Slurm's SPANK header, records the Slurm release the plugin is built for
# (a SPANK plugin only loads into the same major.minor) and picks how tasks are
# redirected into the guest: spank_prepend_task_argv() exists from 23.11 on.

find_path(SLURM_INCLUDE_DIR slurm/spank.h REQUIRED)
file(STRINGS "${SLURM_INCLUDE_DIR}/slurm/slurm_version.h" _slurm_version_line
     REGEX "^#define SLURM_VERSION_NUMBER[ \t]+0x[0-9a-fA-F]+")
if(NOT _slurm_version_line)
  message(FATAL_ERROR "spank_vm: no SLURM_VERSION_NUMBER in ${SLURM_INCLUDE_DIR}/slurm/slurm_version.h")
endif()
string(REGEX REPLACE ".*0x([0-9a-fA-F]+).*" "\\1" _slurm_hex "${_slurm_version_line}")
math(EXPR SLURM_VERSION_NUMBER "0x${_slurm_hex}")
math(EXPR SLURM_VERSION_MAJOR "(${SLURM_VERSION_NUMBER} >> 16) & 255")
math(EXPR SLURM_VERSION_MINOR "(${SLURM_VERSION_NUMBER} >> 8) & 255")
math(EXPR SLURM_VERSION_MICRO "${SLURM_VERSION_NUMBER} & 255")
# Slurm spells its minor with two digits (22.05).
math(EXPR _next_minor "${SLURM_VERSION_MINOR} + 1")
foreach(_v SLURM_VERSION_MINOR _next_minor)
  if(${_v} LESS 10)
    set(${_v} "0${${_v}}")
  endif()
endforeach()
set(SLURM_VERSION "${SLURM_VERSION_MAJOR}.${SLURM_VERSION_MINOR}.${SLURM_VERSION_MICRO}")
set(SLURM_VERSION_MAJOR_MINOR "${SLURM_VERSION_MAJOR}.${SLURM_VERSION_MINOR}")
set(SLURM_VERSION_NEXT_MINOR "${SLURM_VERSION_MAJOR}.${_next_minor}")

math(EXPR _prepend_threshold "(23 << 16) + (11 << 8)")
if(SLURM_VERSION_NUMBER GREATER_EQUAL _prepend_threshold)
  set(SPANK_VM_TASK_REDIRECT "prepend_task_argv")
  set(SPANK_VM_TASK_REDIRECT_PREPEND 1)
else()
  set(SPANK_VM_TASK_REDIRECT "argv0")
  set(SPANK_VM_TASK_REDIRECT_PREPEND 0)
endif()

find_path(SLURM_PLUGIN_DIR_FOUND accounting_storage_none.so
          PATHS "/usr/${CMAKE_INSTALL_LIBDIR}/slurm-wlm" "/usr/${CMAKE_INSTALL_LIBDIR}/slurm"
                "/usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/slurm-wlm" "/usr/lib64/slurm" "/usr/lib/slurm"
          NO_DEFAULT_PATH)
if(SLURM_PLUGIN_DIR_FOUND)
  set(_plugin_dir_default "${SLURM_PLUGIN_DIR_FOUND}")
else()
  set(_plugin_dir_default "${CMAKE_INSTALL_FULL_LIBDIR}/slurm")
endif()
set(SLURM_PLUGIN_DIR "${_plugin_dir_default}" CACHE PATH "Slurm's PluginDir, where spank_vm.so is installed")

message(STATUS "spank_vm: building for Slurm ${SLURM_VERSION} (plugins in ${SLURM_PLUGIN_DIR}), task redirection: ${SPANK_VM_TASK_REDIRECT}")
