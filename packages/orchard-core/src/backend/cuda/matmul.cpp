// Matmul on CUDA through cuBLASLt (cublaslt.h): one strided-batched product per call. cuBLASLt is
// column-major, so a row-major out [M, N] is computed as its transpose, out^T = b^T a^T: each
// operand is handed over as stored, with a transpose flag where its rows rather than its columns
// are contiguous. linear's bias enters as the product's C matrix (D = A B + 1 * C) with a
// leading dim of 0, so every column of out^T reads the same vector: it is added to the float32
// sums before the one rounding to out's dtype, as on the CPU. (cuBLASLt's bias epilogue adds a
// 16-bit bias after rounding the product to 16 bits on some algorithms, a second rounding.)
#include <algorithm>
#include <climits>
#include <cstdint>
#include <map>
#include <mutex>
#include <utility>

#include "backend/cuda/cublaslt.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.h"
#include "backend/merged_dims.h"
#include "orchard/error.h"

namespace orchard::cuda {

namespace {

Shape leading(const Shape& dims) { return Shape(dims.begin(), dims.end() - 2); }

cudaDataType_t data_type(DType dtype) {
  switch (dtype) {
    case DType::Float64: return CUDA_R_64F;
    case DType::BFloat16: return CUDA_R_16BF;
    case DType::Float16: return CUDA_R_16F;
    default: return CUDA_R_32F;
  }
}

// One matrix operand of a product as cuBLASLt reads it: `rows` x `cols` column-major with
// leading dim `ld`, transposed (op T) or not, `batch_stride` elements apart.
struct Operand {
  int32_t op = lt::kOpN;
  int64_t rows = 0, cols = 0, ld = 0, batch_stride = 0;
  auto operator<=>(const Operand&) const = default;
};

// The column-major view of the transpose of a row-major [r, c] matrix with strides (sr, sc),
// or nothing (false) when neither its rows nor its columns are contiguous. Size-1 dims take
// whichever stride makes the layout valid.
bool transposed_view(int64_t r, int64_t c, int64_t sr, int64_t sc, Operand& view) {
  if ((c == 1 || sc == 1) && (r == 1 || sr >= c)) {  // rows contiguous: stored as the transpose
    view = {lt::kOpN, c, r, r == 1 ? std::max<int64_t>(c, 1) : sr, 0};
    return true;
  }
  if ((r == 1 || sr == 1) && (c == 1 || sc >= r)) {  // columns contiguous: stored as itself
    view = {lt::kOpT, r, c, c == 1 ? std::max<int64_t>(r, 1) : sc, 0};
    return true;
  }
  return false;
}

// The largest power of two up to 256 dividing `address`: the alignment cuBLASLt may assume.
uint32_t alignment(const void* address) {
  const auto bits = reinterpret_cast<uintptr_t>(address);
  uint32_t align = 256;
  while (align > 1 && bits % align != 0) align /= 2;
  return align;
}

// What a product's plan depends on; pointers enter only through their alignments.
struct PlanKey {
  int device;
  DType dtype;
  Operand a, b;  // cuBLASLt's A and B: the views of b and a
  int64_t m, n;
  int32_t batch;
  bool with_bias;
  uint32_t align_a, align_b, align_c, align_d;
  auto operator<=>(const PlanKey&) const = default;
};

// Descriptors and the algorithm cuBLASLt's heuristic picked, made once per key and kept for the
// process (they hold no device memory).
struct Plan {
  lt::MatmulDesc desc = nullptr;
  lt::MatrixLayout a = nullptr, b = nullptr, c = nullptr, d = nullptr;
  lt::HeuristicResult choice{};
};

lt::MatrixLayout make_layout(DType dtype, const Operand& operand, int32_t batch) {
  const lt::Api& api = lt::api();
  lt::MatrixLayout layout = nullptr;
  lt::check(api.layout_create(&layout, data_type(dtype), static_cast<uint64_t>(operand.rows),
                              static_cast<uint64_t>(operand.cols), operand.ld),
            "cublasLtMatrixLayoutCreate");
  if (batch > 1) {
    lt::Status status = api.layout_set(layout, lt::kLayoutBatchCount, &batch, sizeof batch);
    if (status == lt::kSuccess) {
      status =
          api.layout_set(layout, lt::kLayoutBatchStride, &operand.batch_stride, sizeof operand.batch_stride);
    }
    if (status != lt::kSuccess) api.layout_destroy(layout);
    lt::check(status, "cublasLtMatrixLayoutSetAttribute");
  }
  return layout;
}

// cuBLASLt's handle for a device, made on first use and kept for the process.
lt::Handle handle_for(const Launch& launch) {
  static std::mutex mutex;
  static std::map<int, lt::Handle> handles;
  const std::lock_guard lock(mutex);
  lt::Handle& handle = handles[launch.device().index];
  if (handle == nullptr) lt::check(lt::api().create(&handle), "cublasLtCreate");
  return handle;
}

// Largest workspace a plan may ask for: what cuBLAS itself uses on Hopper.
constexpr uint64_t kMaxWorkspaceBytes = uint64_t{32} << 20;

// The descriptors of a product and cuBLASLt's choice of algorithm for them. D is out^T (n x m,
// leading dim n); C is D itself, or the bias: n x m with leading dim 0.
void make_plan(Plan& plan, const PlanKey& key, lt::Handle handle) {
  const lt::Api& api = lt::api();
  const bool wide = key.dtype == DType::Float64;
  const Operand d_view{lt::kOpN, key.n, key.m, key.n, key.m * key.n};
  try {
    lt::check(
        api.desc_create(&plan.desc, wide ? lt::kCompute64F : lt::kCompute32F, wide ? CUDA_R_64F : CUDA_R_32F),
        "cublasLtMatmulDescCreate");
    lt::check(api.desc_set(plan.desc, lt::kDescTransA, &key.a.op, sizeof key.a.op),
              "cublasLtMatmulDescSetAttribute");
    lt::check(api.desc_set(plan.desc, lt::kDescTransB, &key.b.op, sizeof key.b.op),
              "cublasLtMatmulDescSetAttribute");
    plan.a = make_layout(key.dtype, key.a, key.batch);
    plan.b = make_layout(key.dtype, key.b, key.batch);
    plan.d = make_layout(key.dtype, d_view, key.batch);
    plan.c =
        key.with_bias ? make_layout(key.dtype, Operand{lt::kOpN, key.n, key.m, 0, 0}, key.batch) : plan.d;
    lt::Preference preference = nullptr;
    lt::check(api.preference_create(&preference), "cublasLtMatmulPreferenceCreate");
    const std::pair<int, uint32_t> aligns[4] = {{lt::kPrefAlignmentA, key.align_a},
                                                {lt::kPrefAlignmentB, key.align_b},
                                                {lt::kPrefAlignmentC, key.align_c},
                                                {lt::kPrefAlignmentD, key.align_d}};
    lt::Status status =
        api.preference_set(preference, lt::kPrefMaxWorkspace, &kMaxWorkspaceBytes, sizeof kMaxWorkspaceBytes);
    for (const auto& [attribute, align] : aligns) {
      if (status == lt::kSuccess) status = api.preference_set(preference, attribute, &align, sizeof align);
    }
    int found = 0;
    if (status == lt::kSuccess) {
      status = api.heuristic(handle, plan.desc, plan.a, plan.b, plan.c, plan.d, preference, 1, &plan.choice,
                             &found);
    }
    api.preference_destroy(preference);
    lt::check(status, "cublasLtMatmulAlgoGetHeuristic");
    if (found == 0) {
      fail<NotImplementedError>("matmul on cuda: cuBLASLt has no algorithm for ", dtype_name(key.dtype), " ",
                                key.m, " x ", key.n, " products (batch ", key.batch,
                                key.with_bias ? ", with a bias" : "", ")");
    }
  } catch (...) {
    if (plan.desc) api.desc_destroy(plan.desc);
    if (plan.c && plan.c != plan.d) api.layout_destroy(plan.c);
    for (lt::MatrixLayout layout : {plan.a, plan.b, plan.d}) {
      if (layout) api.layout_destroy(layout);
    }
    throw;
  }
}

// out[z] = a[z] @ b[z] (+ bias on every row) for the z of out's batch dims, out contiguous.
void product(Tensor a, Tensor b, Tensor bias, const Tensor& out) {
  if (out.numel() == 0) return;
  const int64_t rank = out.ndim();
  const int64_t m = out.shape()[rank - 2], n = out.shape()[rank - 1], k = a.shape()[rank - 1];
  if (k == 0) {  // an empty sum: nothing for cuBLASLt to read
    if (!bias.defined()) return copy_kernels().fill(out, 0.0);
    return copy_kernels().copy(bias.expand(out.shape()), out);
  }
  // One batch stride per operand, or contiguous copies of the operands that have none.
  const Shape batch_shape = leading(out.shape());
  auto batch_dims = [&] {
    const Shape out_strides = leading(out.strides()), a_strides = leading(a.strides()),
                b_strides = leading(b.strides());
    return backend::merge_dims(Op::Matmul, "cuda", batch_shape, {&out_strides, &a_strides, &b_strides});
  };
  backend::MergedDims batches = batch_dims();
  Operand a_view, b_view;
  auto matrices_fit = [&] {
    return transposed_view(m, k, a.strides()[rank - 2], a.strides()[rank - 1], a_view) &&
           transposed_view(k, n, b.strides()[rank - 2], b.strides()[rank - 1], b_view);
  };
  if (batches.ndim > 1 || !matrices_fit()) {
    a = a.contiguous();
    b = b.contiguous();
    batches = batch_dims();
    matrices_fit();
  }
  if (batches.numel > INT32_MAX) {
    fail<NotImplementedError>("matmul on cuda: ", batches.numel,
                              " batch matrices exceed cuBLASLt's 2^31 - 1");
  }
  const auto batch = static_cast<int32_t>(batches.numel);
  if (batches.ndim == 1) {
    a_view.batch_stride = batches.strides[1][0];
    b_view.batch_stride = batches.strides[2][0];
  }
  if (bias.defined() && bias.strides()[0] != 1) bias = bias.contiguous();

  // out^T (n x m) = op(b's view) (n x k) * op(a's view) (k x m) [+ bias on every column].
  const Launch launch(out);
  const PlanKey key{launch.device().index,
                    out.dtype(),
                    b_view,
                    a_view,
                    m,
                    n,
                    batch,
                    bias.defined(),
                    alignment(b.data_ptr()),
                    alignment(a.data_ptr()),
                    alignment(bias.defined() ? bias.data_ptr() : out.data_ptr()),
                    alignment(out.data_ptr())};
  const lt::Handle handle = handle_for(launch);
  const Plan* plan = nullptr;
  {
    static std::mutex mutex;
    static std::map<PlanKey, Plan> plans;
    const std::lock_guard lock(mutex);
    auto [entry, made] = plans.try_emplace(key);
    if (made) {
      try {
        make_plan(entry->second, key, handle);
      } catch (...) {
        plans.erase(entry);
        throw;
      }
    }
    plan = &entry->second;  // map entries stay where they are
  }
  // The workspace comes from the stream-ordered pool, so it is free for reuse once queued work
  // on this stream has read it.
  const size_t workspace_size = plan->choice.workspace_size;
  const Tensor workspace =
      workspace_size > 0
          ? Tensor::empty({static_cast<int64_t>((workspace_size + 7) / 8)}, DType::Int64, out.device())
          : Tensor();
  const double one64 = 1.0, zero64 = 0.0;
  const float one32 = 1.0f, zero32 = 0.0f;
  const bool wide = out.dtype() == DType::Float64;
  const void* one = wide ? static_cast<const void*>(&one64) : &one32;
  const void* zero = wide ? static_cast<const void*>(&zero64) : &zero32;
  lt::check(
      lt::api().matmul(handle, plan->desc, one, b.data_ptr(), plan->a, a.data_ptr(), plan->b,
                       bias.defined() ? one : zero, bias.defined() ? bias.data_ptr() : out.data_ptr(),
                       plan->c, out.data_ptr(), plan->d, &plan->choice.algo,
                       workspace.defined() ? workspace.data_ptr() : nullptr, workspace_size, launch.stream()),
      "cublasLtMatmul");
}

class CudaLinalgKernels final : public LinalgKernels {
 public:
  void matmul(const Tensor& a, const Tensor& b, const Tensor& out) const override {
    product(a, b, Tensor(), out);
  }
  void linear(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& out) const override {
    product(x, w.mT(), bias, out);
  }
};

}  // namespace

const LinalgKernels& matmul_kernels() {
  static const CudaLinalgKernels kernels;
  return kernels;
}

bool matmul_supports(DType dtype) { return is_floating(dtype); }

}  // namespace orchard::cuda
