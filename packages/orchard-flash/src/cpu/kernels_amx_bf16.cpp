// The CPU kernels for amx_bf16 (meson compiles this file with avx512_bf16's -m flags): those of
// avx512_bf16, with bfloat16 attention's products on AMX's tiles (kernels.h, pair_gemm).
#define ORCHARD_FLASH_ISA amx_bf16
#define ORCHARD_FLASH_VECTOR_BYTES 64
#define ORCHARD_FLASH_TILE_ROWS 6
#define ORCHARD_FLASH_TILE_VECTORS 4
#define ORCHARD_FLASH_AMX 1
#include "cpu/kernels.h"
