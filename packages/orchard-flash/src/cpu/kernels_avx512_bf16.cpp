// The CPU kernels for avx512 with the BF16 dot-product instruction (vdpbf16ps), which bfloat16
// inputs multiply with (meson compiles this file with its -m flags): 64-byte vectors, a
// 6x4-vector register tile.
#define ORCHARD_FLASH_ISA avx512_bf16
#define ORCHARD_FLASH_VECTOR_BYTES 64
#define ORCHARD_FLASH_TILE_ROWS 6
#define ORCHARD_FLASH_TILE_VECTORS 4
#define ORCHARD_FLASH_BF16_DOT
#include "cpu/kernels.h"
