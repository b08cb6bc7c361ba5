// The dropout mask's pieces are 16 bits (attention.h), so the rate applied is a multiple of
// 2^-16. Apart so that the CUDA kernels' launch code can include it without attention.h.
#pragma once

namespace orchard::flash {

constexpr double kDropoutSteps = 65536.0;

}  // namespace orchard::flash
