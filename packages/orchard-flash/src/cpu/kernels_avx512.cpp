// The CPU kernels for avx512 (meson compiles this file with its -m flags): 64-byte vectors, a 6x4-vector
// register tile.
#define ORCHARD_FLASH_ISA avx512
#define ORCHARD_FLASH_VECTOR_BYTES 64
#define ORCHARD_FLASH_TILE_ROWS 6
#define ORCHARD_FLASH_TILE_VECTORS 4
#include "cpu/kernels.h"
