// Stand-in for the header that a CUDA build of LibTorch generates. Debian's CPU LibTorch ships the
// c10/cuda headers without it; with this line they compile (compile-only checks of the GPU sources).
#define C10_CUDA_BUILD_SHARED_LIBS
