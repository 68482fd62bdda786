# CTest registration of the GoogleTest programs: one entry per (program, rank count) that runs every
# test of the program, with no gtest filter, so a test or suite added to a program runs as soon as it
# compiles. A test that is meaningful at some rank counts only skips itself at the others
# (HCL_ONLY_AT_RANKS in tests/support/mpi_world.h). Multi-rank entries run under mpirun (CMake's
# MPIEXEC_* variables) and carry the label "mpi".

set(HCL_MPIEXEC_EXTRA_FLAGS --oversubscribe)
execute_process(COMMAND id -u OUTPUT_VARIABLE _hcl_uid OUTPUT_STRIP_TRAILING_WHITESPACE)
if(_hcl_uid STREQUAL "0")
  list(APPEND HCL_MPIEXEC_EXTRA_FLAGS --allow-run-as-root)
endif()

# hcl_add_test(NAME <ctest name> TARGET <gtest program> [RANKS <n>...] [TIMEOUT <s>] [LABELS ...])
# Without RANKS the program runs as one plain process; with RANKS, once per rank count under mpirun,
# named <name>_np<n>.
function(hcl_add_test)
  cmake_parse_arguments(T "" "NAME;TARGET;TIMEOUT" "RANKS;LABELS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  # One thread per rank: several ranks share 2 cores, and tests are compared, not timed.
  set(_env "OMP_NUM_THREADS=1" "HCL_SHARED_DIR=${HCL_SHARED_DIR}")
  if(NOT T_RANKS)
    add_test(NAME ${T_NAME} COMMAND $<TARGET_FILE:${T_TARGET}>)
    set_tests_properties(${T_NAME} PROPERTIES TIMEOUT ${T_TIMEOUT} ENVIRONMENT "${_env}"
      LABELS "${T_LABELS}")
    return()
  endif()
  foreach(np IN LISTS T_RANKS)
    add_test(NAME ${T_NAME}_np${np}
      COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} ${HCL_MPIEXEC_EXTRA_FLAGS}
              ${MPIEXEC_PREFLAGS} $<TARGET_FILE:${T_TARGET}> ${MPIEXEC_POSTFLAGS})
    set_tests_properties(${T_NAME}_np${np} PROPERTIES TIMEOUT ${T_TIMEOUT} ENVIRONMENT "${_env}"
      PROCESSORS ${np} LABELS "mpi;${T_LABELS}")
  endforeach()
endfunction()
