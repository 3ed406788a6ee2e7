#ifndef CGATEHOUSE_MEMORY_H
#define CGATEHOUSE_MEMORY_H

/// Has glibc's malloc serve every block of 4 MiB or more by mmap and give it back when freed.
/// Without it glibc raises its mmap threshold after the first such block is freed, and every
/// later one — each password check's 16 MiB scrypt block — stays resident in the arena of the
/// thread that used it. Does nothing on other C libraries.
void gatehouse_return_large_blocks(void);

#endif
