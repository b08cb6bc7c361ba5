// Aligned host allocations, shared by the CPU runtime and host-backed stand-ins.
#pragma once

#include "orchard/allocator.h"

namespace orchard::backend {

// 64-byte aligned (a cache line, an AVX-512 vector); `device_name` is for errors.
DataPtr allocate_host(size_t nbytes, const char* device_name);

}  // namespace orchard::backend
