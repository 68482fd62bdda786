# Compiler settings shared by every project target: warnings as errors for our own code (the
# dependencies' headers are system headers), MPI without its C++ bindings, and one precompiled
# header (LibTorch, Boost.Log, JSON) reused by every target so that 2 cores build in minutes. MPI
# is not in it: only dist/ and the folders above it link MPI.

option(HCL_USE_CCACHE "Use ccache when it is installed" ON)
if(HCL_USE_CCACHE)
  find_program(HCL_CCACHE ccache)
  if(HCL_CCACHE)
    # Precompiled headers need these sloppiness settings for ccache to hit; the base folder makes
    # paths relative, so a fresh clone elsewhere (CI) reuses the cache.
    set(CMAKE_CXX_COMPILER_LAUNCHER
      ${CMAKE_COMMAND} -E env CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
      CCACHE_BASEDIR=${PROJECT_SOURCE_DIR} ${HCL_CCACHE})
  endif()
endif()

set(HCL_WARNINGS -Wall -Wextra -Werror -Wno-unused-parameter)

# AddressSanitizer and UndefinedBehaviorSanitizer for everything we compile (scripts/sanitize).
option(HCL_SANITIZE "Build with -fsanitize=address,undefined" OFF)
if(HCL_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
  # GCC's flow analysis gives false "maybe uninitialized" warnings in LibTorch's headers under ASan.
  list(APPEND HCL_WARNINGS -Wno-maybe-uninitialized)
endif()

# Definitions for every target alike (the shared precompiled header requires identical ones):
# MPI's C API only, Boost.Log as a shared library, and whether the CUDA/NCCL code is built
# (HCL_WITH_CUDA, as the CMake variable; dist/ picks its backend files in CMake, not with #ifdef).
add_compile_definitions(OMPI_SKIP_MPICXX=1 MPICH_SKIP_MPICXX=1 BOOST_LOG_DYN_LINK=1)
if(HCL_WITH_CUDA)
  add_compile_definitions(HCL_WITH_CUDA=1)
endif()

add_library(hcl_pch OBJECT ${PROJECT_SOURCE_DIR}/cmake/pch.cpp)
target_link_libraries(hcl_pch PUBLIC torch Boost::log nlohmann_json::nlohmann_json)
target_compile_options(hcl_pch PRIVATE ${HCL_WARNINGS})
target_precompile_headers(hcl_pch PRIVATE
  <torch/torch.h> <boost/log/trivial.hpp> <nlohmann/json.hpp>
  <string> <vector> <memory> <functional> <stdexcept>)

# hcl_target(<target>): our compile settings plus the shared precompiled header.
function(hcl_target target)
  target_compile_options(${target} PRIVATE ${HCL_WARNINGS})
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR})
  target_precompile_headers(${target} REUSE_FROM hcl_pch)
endfunction()
