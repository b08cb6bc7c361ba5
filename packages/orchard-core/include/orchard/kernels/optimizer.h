// The numbers of the fused optimizer kernels (ElementwiseKernels::adam_step). Plain C++ without
// orchard's other headers, so that nvcc reads the same definition.
#pragma once

#include <cstdint>

namespace orchard {

// How Adam applies weight decay: not at all, to the gradient (Adam's L2), or to the parameter
// (AdamW's decoupled decay).
enum class WeightDecay : uint8_t { None, L2, Decoupled };

// One adam_step's numbers, each rounded as the unfused op of optim/adam.py that takes it rounds
// it (src/ops/optimizer.cpp): mul_, div_ and add_ take their number in the tensor's dtype,
// lerp_, addcmul_ and addcdiv_ in the computation type (float for the 16-bit floats). Every
// value is exact in the computation type, so kernels convert it without rounding.
struct AdamStepNumbers {
  WeightDecay decay = WeightDecay::None;
  bool maximize = false;               // the gradient negated first
  double decay_factor = 0.0;           // L2: grad + param * it; Decoupled: param * it (1 - lr * decay)
  double avg_weight = 0.0;             // exp_avg.lerp_(grad, it): 1 - beta1
  double beta2 = 0.0;                  // exp_avg_sq.mul_(it)
  double sq_weight = 0.0;              // exp_avg_sq.addcmul_(grad, grad, value=it): 1 - beta2
  double bias_correction2_sqrt = 0.0;  // denom.div_(it)
  double eps = 0.0;                    // denom.add_(it)
  double neg_step_size = 0.0;          // param.addcdiv_(exp_avg, denom, value=it): -lr / bias_correction1
};

}  // namespace orchard
