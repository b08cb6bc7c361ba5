// The CPU kernels for the baseline instruction set (SSE2 on x86-64, NEON on arm64): 16-byte vectors, a
// 4x3-vector register tile.
#define ORCHARD_FLASH_ISA generic
#define ORCHARD_FLASH_VECTOR_BYTES 16
#define ORCHARD_FLASH_TILE_ROWS 4
#define ORCHARD_FLASH_TILE_VECTORS 3
#include "cpu/kernels.h"
