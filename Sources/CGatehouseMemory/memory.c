#include "CGatehouseMemory.h"
#include <stdlib.h>  // defines __GLIBC__ on glibc systems
#if defined(__GLIBC__)
#include <malloc.h>
#endif

void gatehouse_return_large_blocks(void) {
#if defined(__GLIBC__)
    // Setting the threshold also switches off glibc's dynamic adjustment of it.
    mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
#endif
}
