// The CPU kernels for avx2 (meson compiles this file with its -m flags): 32-byte vectors, a 6x2-vector
// register tile.
#define ORCHARD_FLASH_ISA avx2
#define ORCHARD_FLASH_VECTOR_BYTES 32
#define ORCHARD_FLASH_TILE_ROWS 6
#define ORCHARD_FLASH_TILE_VECTORS 2
#include "cpu/kernels.h"
