# Finds every dependency of the project, each with a message that says how to get it when missing,
# and decides whether the CUDA/NCCL code is built (a CUDA LibTorch) or only compiled (CPU LibTorch).

set(_hcl_setup_hint "run scripts/setup (Debian/Ubuntu) or point CMAKE_PREFIX_PATH at it")

# LibTorch: Debian's libtorch-dev (1.13, CPU) or any CUDA LibTorch given through CMAKE_PREFIX_PATH.
find_package(Torch QUIET)
if(NOT Torch_FOUND)
  message(FATAL_ERROR "LibTorch not found: ${_hcl_setup_hint} (for a CUDA LibTorch: "
    "-DCMAKE_PREFIX_PATH=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)'))")
endif()
find_library(HCL_C10_CUDA_LIBRARY c10_cuda HINTS "${TORCH_INSTALL_PREFIX}/lib" NO_DEFAULT_PATH)
if(HCL_C10_CUDA_LIBRARY)
  set(HCL_TORCH_HAS_CUDA ON)
else()
  set(HCL_TORCH_HAS_CUDA OFF)
endif()
message(STATUS "LibTorch ${Torch_VERSION} at ${TORCH_INSTALL_PREFIX} (CUDA: ${HCL_TORCH_HAS_CUDA})")

find_package(MPI QUIET COMPONENTS C)
if(NOT MPI_C_FOUND)
  message(FATAL_ERROR "MPI not found (OpenMPI: libopenmpi-dev, openmpi-bin): ${_hcl_setup_hint}")
endif()

find_package(Boost 1.71 QUIET COMPONENTS log log_setup program_options)
if(NOT Boost_FOUND)
  message(FATAL_ERROR "Boost.Log / Boost.Program_options not found "
    "(libboost-log-dev, libboost-program-options-dev): ${_hcl_setup_hint}")
endif()

find_package(GTest QUIET)
if(NOT GTest_FOUND)
  message(FATAL_ERROR "GoogleTest not found (libgtest-dev): ${_hcl_setup_hint}")
endif()

find_package(ZLIB QUIET)
if(NOT ZLIB_FOUND)
  message(FATAL_ERROR "zlib not found (zlib1g-dev): ${_hcl_setup_hint}")
endif()

find_package(nlohmann_json 3 QUIET)
if(NOT nlohmann_json_FOUND)
  message(FATAL_ERROR "nlohmann-json not found (nlohmann-json3-dev): ${_hcl_setup_hint}")
endif()

# CUDA and NCCL. With a CUDA LibTorch (and HCL_ENABLE_CUDA), the NCCL backend is built and linked.
# With a CPU LibTorch, the GPU-only sources are still compiled (never linked) when the CUDA headers
# and NCCL are present, so that CI catches errors in code it cannot run.
option(HCL_ENABLE_CUDA "Build the CUDA/NCCL code when the LibTorch found has CUDA" ON)
option(HCL_COMPILE_GPU_SOURCES "Compile (not link) the GPU-only sources against a CPU LibTorch" ON)
option(HCL_REQUIRE_CUDA "Fail unless the CUDA/NCCL backend is built (CI's LibTorch 2.x build)" OFF)

set(HCL_WITH_CUDA OFF)
set(HCL_CHECK_GPU_SOURCES OFF)
if(HCL_ENABLE_CUDA OR HCL_COMPILE_GPU_SOURCES)
  find_package(NCCL QUIET)
  find_path(HCL_CUDA_RUNTIME_INCLUDE_DIR cuda_runtime_api.h
    HINTS ${CUDAToolkit_ROOT} $ENV{CUDA_HOME} /usr/local/cuda PATH_SUFFIXES include)
endif()
if(HCL_ENABLE_CUDA AND HCL_TORCH_HAS_CUDA)
  if(NOT NCCL_FOUND)
    message(FATAL_ERROR "LibTorch has CUDA but NCCL was not found: install NCCL, set NCCL_HOME, "
      "or configure with -DHCL_ENABLE_CUDA=OFF")
  endif()
  set(HCL_WITH_CUDA ON)
  # LibTorch's CUDA library needs libnccl.so.2 too: resolve it when linking to the NCCL found here,
  # not to another one on the linker's path (a CUDA toolkit's may be older than torch's own).
  get_filename_component(_hcl_nccl_dir "${NCCL_LIBRARY}" DIRECTORY)
  add_link_options("LINKER:-rpath-link,${_hcl_nccl_dir}")
  message(STATUS "CUDA/NCCL backend: built (NCCL ${NCCL_VERSION}, ${NCCL_LIBRARY})")
elseif(HCL_COMPILE_GPU_SOURCES AND NCCL_FOUND AND HCL_CUDA_RUNTIME_INCLUDE_DIR)
  set(HCL_CHECK_GPU_SOURCES ON)
  message(STATUS "CUDA/NCCL backend: compile-only check (CPU LibTorch; NCCL ${NCCL_VERSION})")
else()
  message(STATUS "CUDA/NCCL backend: off")
endif()
if(HCL_REQUIRE_CUDA AND NOT HCL_WITH_CUDA)
  message(FATAL_ERROR "HCL_REQUIRE_CUDA: the CUDA/NCCL backend is not built (LibTorch ${Torch_VERSION} "
    "at ${TORCH_INSTALL_PREFIX} has CUDA: ${HCL_TORCH_HAS_CUDA}; NCCL found: ${NCCL_FOUND})")
endif()
