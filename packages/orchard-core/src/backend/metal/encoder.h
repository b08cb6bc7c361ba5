// A Metal device's runtime as its per-op encoding reaches it; the encoder itself is public
// (orchard/metal/encoder.h), so packages built against orchard-core encode the same way.
#pragma once

#include "orchard/device.h"
#include "orchard/metal/encoder.h"

namespace orchard::metal {

// A Metal device's runtime, real or emulated: the encoder its current stream records into.
class MetalDevice : public DeviceRuntime {
 public:
  virtual ComputeEncoder& encoder() = 0;
};

}  // namespace orchard::metal
