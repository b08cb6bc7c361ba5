// The CPU kernels for avx512_bf16 (meson compiles this file with its -m flags): avx512's, with
// bfloat16 attention's forward products on vdpbf16ps (kernels.h, "bfloat16 pair products").
#define ORCHARD_FLASH_ISA avx512_bf16
#define ORCHARD_FLASH_VECTOR_BYTES 64
#define ORCHARD_FLASH_TILE_ROWS 6
#define ORCHARD_FLASH_TILE_VECTORS 4
#include "cpu/kernels.h"
