/* The machine's fp32 fused multiply-add ceiling: independent FMA chains on every OpenMP
   thread, in the widest vectors the CPU has (AVX-512, else AVX2). Prints GFLOP/s. */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>

#define CHAINS 12
#define STEPS 50000000L

__attribute__((target("avx512f"))) static double run_avx512(void) {
  __m512 acc[CHAINS];
  for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_ps(1.0f + i * 1e-7f);
  const __m512 mul = _mm512_set1_ps(0.999999f), add = _mm512_set1_ps(1e-7f);
  const double start = omp_get_wtime();
  for (long n = 0; n < STEPS; n++)
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], mul, add);
  const double seconds = omp_get_wtime() - start;
  float sink = 0;
  for (int i = 0; i < CHAINS; i++) sink += _mm512_reduce_add_ps(acc[i]);
  if (sink == 12345.0f) printf(" ");
  return STEPS * CHAINS * 16.0 * 2 / seconds;
}

__attribute__((target("avx2,fma"))) static double run_avx2(void) {
  __m256 acc[CHAINS];
  for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_set1_ps(1.0f + i * 1e-7f);
  const __m256 mul = _mm256_set1_ps(0.999999f), add = _mm256_set1_ps(1e-7f);
  const double start = omp_get_wtime();
  for (long n = 0; n < STEPS; n++)
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_fmadd_ps(acc[i], mul, add);
  const double seconds = omp_get_wtime() - start;
  float sink = 0;
  float lanes[8];
  for (int i = 0; i < CHAINS; i++) {
    _mm256_storeu_ps(lanes, acc[i]);
    sink += lanes[0];
  }
  if (sink == 12345.0f) printf(" ");
  return STEPS * CHAINS * 8.0 * 2 / seconds;
}

int main(void) {
  const int wide = __builtin_cpu_supports("avx512f");
  double total = 0;
#pragma omp parallel reduction(+ : total)
  total += wide ? run_avx512() : run_avx2();
  printf("%.1f %s\n", total / 1e9, wide ? "avx512" : "avx2");
  return 0;
}
