// The dropout keep mask (batch, heads, len_q, len_k) as bytes, one thread per 8 keys of a row
// (one Philox draw): the mask the attention kernels apply, for tests.
#include "flash_common.h"

kernel void flash_dropout_mask(device uchar* mask [[buffer(0)]], constant FlashParams& p [[buffer(1)]],
                               uint2 position [[thread_position_in_grid]], uint2 grid [[threads_per_grid]]) {
  const long i = long(position.y) * grid.x + position.x;
  const long groups = (p.len_k + 7) / 8, rows = long(p.batch) * p.heads * p.len_q;
  if (i >= rows * groups) return;
  const long r = i / groups;
  const int col = int(i % groups) * 8;
  const int row = int(r % p.len_q), h = int(r / p.len_q % p.heads), b = int(r / p.len_q / p.heads);
  const orchard::philox::Words words = dropout_words(p, b, h, row, col);
  for (int w = 0; w < 8 && col + w < p.len_k; ++w) mask[r * p.len_k + col + w] = keep_factor(p, words, w) != 0.0f;
}
