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

# Warnings are errors here and in CI; another compiler (the GPU machine's g++ 13) may warn where ours
# does not, and scripts/gpu_check turns this off there rather than lose its slot to a new warning.
option(HCL_WERROR "Treat warnings in our own code as errors" ON)
if(HCL_WERROR)
  set(HCL_WARNINGS -Wall -Wextra -Werror -Wno-unused-parameter)
else()
  set(HCL_WARNINGS -Wall -Wextra -Wno-unused-parameter)
endif()

# AddressSanitizer and UndefinedBehaviorSanitizer for everything we compile (scripts/sanitize).
option(HCL_SANITIZE "Build with -fsanitize=address,undefined" OFF)
if(HCL_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
  # GCC's flow analysis gives false "maybe uninitialized" warnings in LibTorch's headers under ASan.
  list(APPEND HCL_WARNINGS -Wno-maybe-uninitialized)
endif()

# Definitions for every target alike (the shared precompiled header requires identical ones):
# MPI's C API only, Boost.Log as a shared library. Whether the CUDA/NCCL code is built is decided
# in CMake, file by file (hcl_cuda_sources below), never with #ifdef.
add_compile_definitions(OMPI_SKIP_MPICXX=1 MPICH_SKIP_MPICXX=1 BOOST_LOG_DYN_LINK=1)

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

# hcl_cuda_sources(<target> SOURCES <files> STUB <file> [LIBS <libs>]): the one CUDA seam. Where the
# CUDA/NCCL code is built (HCL_WITH_CUDA) the sources join <target> (and LIBS are linked); otherwise
# the stub does (its functions throw an hcl::Error that names the missing build), and where a CPU
# LibTorch meets the CUDA headers (HCL_CHECK_GPU_SOURCES) the sources are still compiled, never
# linked, so that a build without a GPU catches their errors: Debian's CPU LibTorch has the
# c10/cuda headers but no libc10_cuda, and lacks one generated header (cmake/cuda_stub stands in).
function(hcl_cuda_sources target)
  cmake_parse_arguments(C "" "STUB" "SOURCES;LIBS" ${ARGN})
  if(HCL_WITH_CUDA)
    target_sources(${target} PRIVATE ${C_SOURCES})
    if(C_LIBS)
      target_link_libraries(${target} PUBLIC ${C_LIBS})
    endif()
    return()
  endif()
  target_sources(${target} PRIVATE ${C_STUB})
  if(HCL_CHECK_GPU_SOURCES)
    add_library(${target}_gpu_compile_check OBJECT ${C_SOURCES})
    target_include_directories(${target}_gpu_compile_check PRIVATE ${PROJECT_SOURCE_DIR}/cmake/cuda_stub
      ${HCL_CUDA_RUNTIME_INCLUDE_DIR} ${NCCL_INCLUDE_DIR} ${PROJECT_SOURCE_DIR})
    target_link_libraries(${target}_gpu_compile_check PRIVATE torch MPI::MPI_C Boost::log
      nlohmann_json::nlohmann_json)
    target_compile_options(${target}_gpu_compile_check PRIVATE ${HCL_WARNINGS})
  endif()
endfunction()
