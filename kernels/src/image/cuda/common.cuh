// Prepended to every kernel source, by the CUDA launcher (NVRTC) and by the
// host launcher (a C++ compiler, `kernels/build.rs`), so that each kernel is
// written once and the backends differ only in how it is launched.
// Kernels are 1-D: one thread per independent item (output pixel, image,
// query row), no shared memory, so the host launcher can run the threads in
// any order.
#ifdef __CUDACC_RTC__
#define DJ_KERNEL extern "C" __global__
#define DJ_FN static __device__ __forceinline__
#define DJ_THREAD_ID ((unsigned long long)blockIdx.x * blockDim.x + threadIdx.x)
#else
#include <math.h>
#define DJ_KERNEL extern "C"
#define DJ_FN static inline
extern "C" unsigned long long dajia_host_thread_id(void);
#define DJ_THREAD_ID dajia_host_thread_id()
#endif
#define DJ_NEG_INF (-3.402823466e38f)
