// Matmul on CUDA through cuBLASLt (cublaslt.h): one strided-batched product per call, linear's
// bias added in the product's epilogue. cuBLASLt is column-major, so a row-major out [M, N]
// is computed as its transpose, out^T = b^T a^T: each operand is handed over as stored, with
// a transpose flag where its rows rather than its columns are contiguous.
#include <climits>
#include <cstdint>
#include <map>
#include <mutex>
#include <tuple>

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
using PlanKey = std::tuple<int, DType, int32_t, int32_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                           int64_t, int64_t, int64_t, int32_t, bool, uint32_t, uint32_t, uint32_t, uint32_t>;

// Descriptors and the algorithm cuBLASLt's heuristic picked, made once per key and kept for the
// process (they hold no device memory).
struct Plan {
  lt::MatmulDesc desc = nullptr;
  lt::MatrixLayout a = nullptr, b = nullptr, d = nullptr;
  lt::HeuristicResult choice{};
};

lt::MatrixLayout make_layout(DType dtype, const Operand& operand, int32_t batch) {
  const lt::Api& api = lt::api();
  lt::MatrixLayout layout = nullptr;
  lt::check(api.layout_create(&layout, data_type(dtype), static_cast<uint64_t>(operand.rows),
                              static_cast<uint64_t>(operand.cols), operand.ld),
            "cublasLtMatrixLayoutCreate");
  if (batch > 1) {
    lt::check(api.layout_set(layout, lt::kLayoutBatchCount, &batch, sizeof batch),
              "cublasLtMatrixLayoutSetAttribute");
    lt::check(
        api.layout_set(layout, lt::kLayoutBatchStride, &operand.batch_stride, sizeof operand.batch_stride),
        "cublasLtMatrixLayoutSetAttribute");
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

  // out^T (n x m, ld n) = op(b's view) (n x k) * op(a's view) (k x m).
  const Operand d_view{lt::kOpN, n, m, n, m * n};
  const Launch launch(out);
  const PlanKey key{launch.device().index,
                    out.dtype(),
                    b_view.op,
                    a_view.op,
                    m,
                    n,
                    k,
                    a_view.ld,
                    b_view.ld,
                    a_view.batch_stride,
                    b_view.batch_stride,
                    a_view.rows,
                    b_view.rows,
                    batch,
                    bias.defined(),
                    alignment(a.data_ptr()),
                    alignment(b.data_ptr()),
                    alignment(out.data_ptr()),
                    bias.defined() ? alignment(bias.data_ptr()) : 0};
  const lt::Api& api = lt::api();
  const lt::Handle handle = handle_for(launch);
  static std::mutex mutex;
  static std::map<PlanKey, Plan> plans;
  const std::lock_guard lock(mutex);  // the plan's descriptor takes this call's bias pointer
  auto [entry, made] = plans.try_emplace(key);
  Plan& plan = entry->second;
  const bool wide = out.dtype() == DType::Float64;
  if (made) {
    try {
      lt::check(api.desc_create(&plan.desc, wide ? lt::kCompute64F : lt::kCompute32F,
                                wide ? CUDA_R_64F : CUDA_R_32F),
                "cublasLtMatmulDescCreate");
      lt::check(api.desc_set(plan.desc, lt::kDescTransA, &b_view.op, sizeof b_view.op),
                "cublasLtMatmulDescSetAttribute");
      lt::check(api.desc_set(plan.desc, lt::kDescTransB, &a_view.op, sizeof a_view.op),
                "cublasLtMatmulDescSetAttribute");
      if (bias.defined()) {
        const void* pointer = bias.data_ptr();
        lt::check(api.desc_set(plan.desc, lt::kDescEpilogue, &lt::kEpilogueBias, sizeof lt::kEpilogueBias),
                  "cublasLtMatmulDescSetAttribute");
        lt::check(api.desc_set(plan.desc, lt::kDescBiasPointer, &pointer, sizeof pointer),
                  "cublasLtMatmulDescSetAttribute");
      }
      plan.a = make_layout(out.dtype(), b_view, batch);
      plan.b = make_layout(out.dtype(), a_view, batch);
      plan.d = make_layout(out.dtype(), d_view, batch);
      lt::Preference preference = nullptr;
      lt::check(api.preference_create(&preference), "cublasLtMatmulPreferenceCreate");
      const uint32_t aligns[4] = {std::get<16>(key), std::get<15>(key), std::get<17>(key), std::get<17>(key)};
      const int align_attributes[4] = {lt::kPrefAlignmentA, lt::kPrefAlignmentB, lt::kPrefAlignmentC,
                                       lt::kPrefAlignmentD};
      lt::Status status = api.preference_set(preference, lt::kPrefMaxWorkspace, &kMaxWorkspaceBytes,
                                             sizeof kMaxWorkspaceBytes);
      for (int i = 0; i < 4 && status == lt::kSuccess; ++i) {
        status = api.preference_set(preference, align_attributes[i], &aligns[i], sizeof aligns[i]);
      }
      int found = 0;
      if (status == lt::kSuccess) {
        status = api.heuristic(handle, plan.desc, plan.a, plan.b, plan.d, plan.d, preference, 1, &plan.choice,
                               &found);
      }
      api.preference_destroy(preference);
      lt::check(status, "cublasLtMatmulAlgoGetHeuristic");
      if (found == 0) {
        fail<NotImplementedError>("matmul on cuda: cuBLASLt has no algorithm for ", dtype_name(out.dtype()),
                                  " ", m, "x", k, " @ ", k, "x", n, " (batch ", batch, ")");
      }
    } catch (...) {
      if (plan.desc) api.desc_destroy(plan.desc);
      for (lt::MatrixLayout layout : {plan.a, plan.b, plan.d}) {
        if (layout) api.layout_destroy(layout);
      }
      plans.erase(entry);
      throw;
    }
  } else if (bias.defined()) {
    const void* pointer = bias.data_ptr();
    lt::check(api.desc_set(plan.desc, lt::kDescBiasPointer, &pointer, sizeof pointer),
              "cublasLtMatmulDescSetAttribute");
  }
  // The workspace comes from the stream-ordered pool, so it is free for reuse once queued work
  // on this stream has read it.
  const Tensor workspace = plan.choice.workspace_size > 0
                               ? Tensor::empty({static_cast<int64_t>((plan.choice.workspace_size + 7) / 8)},
                                               DType::Int64, out.device())
                               : Tensor();
  const double one64 = 1.0, zero64 = 0.0;
  const float one32 = 1.0f, zero32 = 0.0f;
  const void* alpha = wide ? static_cast<const void*>(&one64) : &one32;
  const void* beta = wide ? static_cast<const void*>(&zero64) : &zero32;
  lt::check(api.matmul(handle, plan.desc, alpha, b.data_ptr(), plan.a, a.data_ptr(), plan.b, beta,
                       out.data_ptr(), plan.d, out.data_ptr(), plan.d, &plan.choice.algo,
                       workspace.defined() ? workspace.data_ptr() : nullptr, plan.choice.workspace_size,
                       launch.stream()),
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
