// Fused optimizer steps: one kernel launch per parameter where the optimizers of
// orchard_core.optim would otherwise issue several in-place ops.
#pragma once

#include "orchard/tensor.h"

namespace orchard {

// Adam's and AdamW's hyperparameters for one step, with the step's bias corrections computed on
// the host as optim/adam.py does (step_size = lr / bias_correction1).
struct AdamStepOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool decoupled_weight_decay = false;
  bool maximize = false;
  double step_size = 0.0;
  double bias_correction2_sqrt = 1.0;
};

// torch's single-tensor Adam update (without amsgrad) of param, exp_avg and exp_avg_sq in place,
// bit for bit what optim/adam.py's unfused ops (mul_, lerp_, addcmul_, sqrt, div_, add_,
// addcdiv_) compute. All four tensors share one shape, floating dtype and device; the three
// written may not overlap each other or grad.
void adam_step_(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                const AdamStepOptions& options);

}  // namespace orchard
