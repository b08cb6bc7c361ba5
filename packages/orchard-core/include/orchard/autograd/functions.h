// Differentiable operators: the operators of orchard/ops/ and the Tensor views, with the
// same names and semantics, recording a backward node when an input requires grad.
// Without one (or under no_grad) they cost one check more than the plain operator.
// Python calls these; kernels and backward formulas call the plain ones.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "orchard/autograd.h"
#include "orchard/ops/elementwise.h"
#include "orchard/ops/matmul.h"
#include "orchard/ops/pointwise.h"
#include "orchard/ops/norm.h"
#include "orchard/ops/random.h"
#include "orchard/ops/reduce.h"
#include "orchard/ops/shape.h"

namespace orchard::autograd {

// Elementwise (src/autograd/functions/elementwise.cpp).
Tensor binary(BinaryOp op, const Operand& input, const Operand& other);
Tensor unary(UnaryOp op, const Tensor& input);
Tensor gelu(const Tensor& input, std::string_view approximate = "none");
Tensor where(const Tensor& condition, const Operand& input, const Operand& other);
Tensor masked_fill(const Tensor& input, const Tensor& mask, const Operand& value);
Tensor clamp(const Tensor& input, const std::optional<Operand>& min, const std::optional<Operand>& max);
const Tensor& binary_(BinaryOp op, const Tensor& self, const Operand& other);
const Tensor& fill_(const Tensor& self, const Scalar& value);
const Tensor& copy_(const Tensor& self, const Tensor& src);

// Fused pointwise (src/autograd/functions/pointwise.cpp).
Tensor lerp(const Tensor& input, const Tensor& end, const Operand& weight);
Tensor addcmul(const Tensor& input, const Tensor& tensor1, const Tensor& tensor2, const Scalar& value = 1);
Tensor addcdiv(const Tensor& input, const Tensor& tensor1, const Tensor& tensor2, const Scalar& value = 1);
const Tensor& lerp_(const Tensor& self, const Tensor& end, const Operand& weight);
const Tensor& addcmul_(const Tensor& self, const Tensor& tensor1, const Tensor& tensor2,
                       const Scalar& value = 1);
const Tensor& addcdiv_(const Tensor& self, const Tensor& tensor1, const Tensor& tensor2,
                       const Scalar& value = 1);

// Views and copies (src/autograd/functions/views.cpp).
Tensor view(const Tensor& self, const Shape& shape);
Tensor reshape(const Tensor& self, const Shape& shape);
Tensor transpose(const Tensor& self, int64_t dim0, int64_t dim1);
Tensor permute(const Tensor& self, const std::vector<int64_t>& dims);
Tensor expand(const Tensor& self, const Shape& shape);
Tensor squeeze(const Tensor& self, std::optional<int64_t> dim);
Tensor unsqueeze(const Tensor& self, int64_t dim);
Tensor select(const Tensor& self, int64_t dim, int64_t index);
Tensor slice(const Tensor& self, int64_t dim, std::optional<int64_t> start, std::optional<int64_t> stop,
             int64_t step = 1);
Tensor T(const Tensor& self);
Tensor mT(const Tensor& self);
Tensor as_strided(const Tensor& self, const Shape& shape, const Shape& strides, int64_t offset);
Tensor contiguous(const Tensor& self);
Tensor clone(const Tensor& self);
Tensor to(const Tensor& self, DType dtype);
Tensor to(const Tensor& self, Device device);

// Reductions and softmax (src/autograd/functions/reduce.cpp).
Tensor sum(const Tensor& input, const DimList& dim, bool keepdim = false, std::optional<DType> dtype = {});
Tensor mean(const Tensor& input, const DimList& dim, bool keepdim = false, std::optional<DType> dtype = {});
Tensor max(const Tensor& input);
Tensor min(const Tensor& input);
ValuesIndices max(const Tensor& input, int64_t dim, bool keepdim = false);
ValuesIndices min(const Tensor& input, int64_t dim, bool keepdim = false);
Tensor var(const Tensor& input, const DimList& dim, double correction = 1, bool keepdim = false);
Tensor std(const Tensor& input, const DimList& dim, double correction = 1, bool keepdim = false);
Tensor logsumexp(const Tensor& input, const std::vector<int64_t>& dim, bool keepdim = false);
Tensor softmax(const Tensor& input, int64_t dim, std::optional<DType> dtype = {});
Tensor log_softmax(const Tensor& input, int64_t dim, std::optional<DType> dtype = {});

// Normalization and losses (src/autograd/functions/norm.cpp).
Tensor layer_norm(const Tensor& input, const Shape& normalized_shape, const Tensor& weight = {},
                  const Tensor& bias = {}, double eps = 1e-5);
Tensor cross_entropy(const Tensor& input, const Tensor& target, int64_t ignore_index = -100,
                     Reduction reduction = Reduction::Mean, double label_smoothing = 0.0);

// Linear algebra (src/autograd/functions/matmul.cpp).
Tensor matmul(const Tensor& a, const Tensor& b);
Tensor linear(const Tensor& input, const Tensor& weight, const Tensor& bias = {});

// Shape and data movement, random (src/autograd/functions/shape.cpp).
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim = 0);
std::vector<Tensor> split(const Tensor& input, int64_t split_size, int64_t dim = 0);
std::vector<Tensor> split(const Tensor& input, const std::vector<int64_t>& sizes, int64_t dim = 0);
std::vector<Tensor> chunk(const Tensor& input, int64_t chunks, int64_t dim = 0);
Tensor index_select(const Tensor& input, int64_t dim, const Tensor& index);
Tensor gather(const Tensor& input, int64_t dim, const Tensor& index);
Tensor scatter_add(const Tensor& input, int64_t dim, const Tensor& index, const Tensor& src);
const Tensor& scatter_add_(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src);
Tensor embedding(const Tensor& indices, const Tensor& weight);
Tensor flip(const Tensor& input, const std::vector<int64_t>& dims);
Tensor tril(const Tensor& input, int64_t diagonal = 0);
Tensor triu(const Tensor& input, int64_t diagonal = 0);
Tensor dropout(const Tensor& input, double p = 0.5, bool training = true);

}  // namespace orchard::autograd
