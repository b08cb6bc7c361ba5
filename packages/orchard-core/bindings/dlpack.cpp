// DLPack both ways: Tensor.__dlpack__/__dlpack_device__ and from_dlpack(obj).
#include <atomic>
#include <memory>
#include <optional>
#include <utility>

#include "convert.h"
#include "dlpack_abi.h"

namespace orchard::bindings {

namespace {

using namespace orchard::dlpack;

constexpr const char* kLegacyName = "dltensor";
constexpr const char* kVersionedName = "dltensor_versioned";

DLDataType to_dl(DType dtype) {
  const auto bits = static_cast<uint8_t>(itemsize(dtype) * 8);
  switch (dtype) {
    case DType::Float32:
    case DType::Float64:
    case DType::Float16: return {kFloat, bits, 1};
    case DType::BFloat16: return {kBfloat, bits, 1};
    case DType::Int32:
    case DType::Int64: return {kInt, bits, 1};
    case DType::Bool: return {kBool, 8, 1};
  }
  fail<TypeError>("dtype ", dtype_name(dtype), " has no DLPack code");
}

DType from_dl(DLDataType t) {
  if (t.lanes == 1) {
    if (t.code == kFloat && t.bits == 32) return DType::Float32;
    if (t.code == kFloat && t.bits == 64) return DType::Float64;
    if (t.code == kFloat && t.bits == 16) return DType::Float16;
    if (t.code == kBfloat && t.bits == 16) return DType::BFloat16;
    if (t.code == kInt && t.bits == 32) return DType::Int32;
    if (t.code == kInt && t.bits == 64) return DType::Int64;
    if (t.code == kBool && t.bits == 8) return DType::Bool;
  }
  fail<TypeError>("unsupported DLPack dtype (code=", int(t.code), ", bits=", int(t.bits), ", lanes=", t.lanes,
                  "); orchard supports float32/64/16, bfloat16, int32, int64 and bool");
}

DLDevice to_dl(Device device) {
  switch (device.type) {
    case DeviceType::CPU: return {kCPU, 0};
    case DeviceType::CUDA: return {kCUDA, device.index};
    case DeviceType::Metal: return {kMetal, device.index};
  }
  fail<ValueError>("device ", device.str(), " has no DLPack code");
}

Device from_dl(DLDevice device) {
  switch (device.device_type) {
    case kCPU:
    case kCUDAHost: return Device{DeviceType::CPU, 0};
    case kCUDA: return Device{DeviceType::CUDA, device.device_id};
    case kMetal: return Device{DeviceType::Metal, device.device_id};
    default:
      fail<ValueError>("unsupported DLPack device type ", device.device_type,
                       "; orchard supports CPU (1), CUDA (2) and Metal (8)");
  }
}

// What an exported capsule owns: the managed struct, the tensor it keeps alive,
// and the shape/stride arrays it points into.
template <class Managed>
struct Export {
  Managed managed{};
  Tensor tensor;
  Shape shape;
  Shape strides;

  static void deleter(Managed* self) { std::unique_ptr<Export>(static_cast<Export*>(self->manager_ctx)); }
};

// DLPack's data and byte_offset: Metal's data is the buffer object (an id<MTLBuffer> on macOS)
// and the offset says where the tensor starts in it, as torch's MPS tensors and MLX's arrays
// say it; other devices' data is the first element's address.
std::pair<void*, uint64_t> dl_address(const Tensor& tensor) {
  if (tensor.device().type != DeviceType::Metal) return {tensor.data_ptr(), 0};
  const Buffer buffer = tensor.buffer();
  return {buffer.handle, buffer.offset};
}

template <class Managed>
Managed* export_tensor(const Tensor& tensor) {
  auto owner = std::make_unique<Export<Managed>>();
  owner->tensor = tensor;
  owner->shape = tensor.shape();
  owner->strides = tensor.strides();
  const auto [data, byte_offset] = dl_address(tensor);
  Managed& m = owner->managed;
  m.dl_tensor = DLTensor{data,
                         to_dl(tensor.device()),
                         static_cast<int32_t>(tensor.ndim()),
                         to_dl(tensor.dtype()),
                         owner->shape.data(),
                         owner->strides.data(),
                         byte_offset};
  m.manager_ctx = owner.get();
  m.deleter = &Export<Managed>::deleter;
  if constexpr (std::is_same_v<Managed, DLManagedTensorVersioned>) m.version = {kMajorVersion, kMinorVersion};
  return &owner.release()->managed;
}

// Runs the producer's deleter if nobody consumed the capsule.
template <class Managed>
void destroy_unconsumed(PyObject* capsule) {
  const char* name = std::is_same_v<Managed, DLManagedTensorVersioned> ? kVersionedName : kLegacyName;
  if (!PyCapsule_IsValid(capsule, name)) return;  // consumed: the consumer owns it now
  auto* managed = static_cast<Managed*>(PyCapsule_GetPointer(capsule, name));
  if (managed && managed->deleter) managed->deleter(managed);
}

// DLPack's `stream` for a CUDA tensor: the consumer will use the data on that stream. None
// and 1 mean the legacy default stream, where orchard queues its work, so nothing is needed;
// -1 asks for no synchronisation; 2 (the per-thread default stream) or a cudaStream_t is made
// to wait, on the device, for the work orchard has queued so far (an event on orchard's
// current stream).
void order_for_consumer(const Tensor& tensor, py::handle stream) {
  if (stream.is_none()) return;
  if (!py::isinstance<py::int_>(stream) || py::isinstance<py::bool_>(stream)) {
    fail<TypeError>("__dlpack__: stream must be an int or None for a CUDA tensor, got ",
                    std::string(py::repr(stream)));
  }
  const auto value = stream.cast<int64_t>();
  if (value == 0) {
    fail<ValueError>(
        "__dlpack__: stream=0 is ambiguous for CUDA; pass 1 for the legacy default stream, "
        "2 for the per-thread default stream or a cudaStream_t as an int");
  }
  if (value < -1) fail<ValueError>("__dlpack__: stream=", value, " is not a CUDA stream");
  if (value == -1 || value == 1) return;
  const Device device = tensor.device();
  DeviceRuntime& rt = runtime(device);
  rt.wait(Stream{device, static_cast<uintptr_t>(value)}, rt.record(current_stream(device)));
}

py::object dlpack(const Tensor& tensor, py::handle stream, py::handle max_version, py::handle dl_device,
                  py::handle copy) {
  if (!stream.is_none() && tensor.device().type == DeviceType::CPU) {
    fail<ValueError>("__dlpack__: stream must be None for a CPU tensor, got ", std::string(py::repr(stream)));
  }
  if (!dl_device.is_none()) {
    const auto wanted = dl_device.cast<std::pair<int32_t, int32_t>>();
    const DLDevice mine = to_dl(tensor.device());
    if (wanted.first != mine.device_type || wanted.second != mine.device_id) {
      throw py::buffer_error("__dlpack__: cannot export a tensor on " + tensor.device().str() +
                             " to DLPack device (" + std::to_string(wanted.first) + ", " +
                             std::to_string(wanted.second) + ")");
    }
  }
  const Tensor exported = (!copy.is_none() && copy.cast<bool>()) ? tensor.clone() : tensor;
  if (tensor.device().type == DeviceType::CUDA) order_for_consumer(exported, stream);
  const bool versioned = !max_version.is_none() && max_version.cast<std::pair<int, int>>().first >= 1;
  if (versioned) {
    return py::reinterpret_steal<py::object>(PyCapsule_New(export_tensor<DLManagedTensorVersioned>(exported),
                                                           kVersionedName,
                                                           &destroy_unconsumed<DLManagedTensorVersioned>));
  }
  return py::reinterpret_steal<py::object>(PyCapsule_New(export_tensor<DLManagedTensor>(exported),
                                                         kLegacyName, &destroy_unconsumed<DLManagedTensor>));
}

// Wraps a consumed DLPack tensor; `release` runs the producer's deleter.
Tensor wrap(const DLTensor& t, std::function<void()> release) {
  const DType dtype = from_dl(t.dtype);
  const Device device = from_dl(t.device);
  DeviceRuntime& rt = runtime(device);  // the device must exist in this build and on this host
  if (t.ndim < 0) fail<ValueError>("DLPack tensor has negative ndim ", t.ndim);
  const Shape shape(t.shape, t.shape + t.ndim);
  Shape strides;
  if (t.strides == nullptr) {
    strides = Shape(shape.size());
    int64_t step = 1;
    for (size_t i = shape.size(); i-- > 0;) {
      strides[i] = step;
      step *= std::max<int64_t>(shape[i], 1);
    }
  } else {
    strides.assign(t.strides, t.strides + t.ndim);
  }
  const size_t item = itemsize(dtype);
  // A Metal producer's data is its buffer object (dl_address); kernels bind that buffer at the
  // offset, and the tensor's data pointer is the runtime's address for it.
  std::optional<Buffer> buffer;
  char* data = nullptr;
  if (device.type == DeviceType::Metal) {
    buffer = Buffer{t.data, t.byte_offset};
    data = static_cast<char*>(rt.data_address(*buffer));
  } else {
    data = static_cast<char*>(t.data) + t.byte_offset;
  }
  if (reinterpret_cast<uintptr_t>(data) % item != 0) {
    fail<ValueError>("DLPack data pointer ", static_cast<void*>(data), " is not aligned to the ", item,
                     "-byte elements of ", dtype_name(dtype));
  }
  int64_t last = 0;
  bool empty = false;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) fail<ValueError>("DLPack tensor has negative dimension ", shape[i]);
    if (strides[i] < 0) {
      fail<ValueError>("negative stride ", strides[i], " in dimension ", i,
                       " is not supported (e.g. a[::-1]); make a copy first");
    }
    empty = empty || shape[i] == 0;
    int64_t reach = 0;
    if (__builtin_mul_overflow(std::max<int64_t>(shape[i] - 1, 0), strides[i], &reach) ||
        __builtin_add_overflow(last, reach, &last)) {
      fail<ValueError>("DLPack tensor extent overflows int64 in dimension ", i);
    }
  }
  const size_t nbytes = empty ? 0 : static_cast<size_t>(last + 1) * item;
  return Tensor::from_data(
      data, nbytes, shape, strides, dtype, device, [release = std::move(release)](void*) { release(); },
      buffer);
}

// Takes ownership of a capsule's tensor: wraps it, marks the capsule used, and
// from then on (only) the wrapper runs the producer's deleter, with the GIL held
// since numpy's drops a Python reference. If wrapping fails the capsule keeps
// ownership and its own destructor frees the tensor.
template <class Managed>
Tensor consume(PyObject* capsule, Managed* managed, const char* used_name) {
  auto owned = std::make_shared<std::atomic<bool>>(false);
  Tensor result = wrap(managed->dl_tensor, [managed, owned] {
    if (!owned->load() || managed->deleter == nullptr || !Py_IsInitialized()) return;
    py::gil_scoped_acquire gil;
    managed->deleter(managed);
  });
  PyCapsule_SetName(capsule, used_name);
  owned->store(true);
  return result;
}

Tensor from_capsule(py::handle capsule) {
  PyObject* cap = capsule.ptr();
  if (PyCapsule_IsValid(cap, kVersionedName)) {
    auto* managed = static_cast<DLManagedTensorVersioned*>(PyCapsule_GetPointer(cap, kVersionedName));
    if (managed->version.major > kMajorVersion) {
      fail<ValueError>("DLPack version ", managed->version.major, ".", managed->version.minor,
                       " is newer than the ", kMajorVersion, ".x this orchard-core understands");
    }
    if (managed->flags & kFlagReadOnly) {
      fail<ValueError>("a read-only DLPack tensor cannot be shared zero-copy; copy it first");
    }
    return consume(cap, managed, "used_dltensor_versioned");
  }
  if (PyCapsule_IsValid(cap, kLegacyName)) {
    auto* managed = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(cap, kLegacyName));
    return consume(cap, managed, "used_dltensor");
  }
  fail<ValueError>(
      "expected an unused DLPack capsule ('dltensor' or 'dltensor_versioned'); "
      "a capsule can be consumed only once");
}

}  // namespace

Tensor from_dlpack(py::handle obj) {
  if (py::isinstance<Tensor>(obj)) return obj.cast<Tensor>();
  if (PyCapsule_CheckExact(obj.ptr())) return from_capsule(obj);
  if (!py::hasattr(obj, "__dlpack__")) {
    fail<TypeError>("from_dlpack expects an object with __dlpack__ (numpy, torch, ...), got ",
                    std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  py::object capsule;
  try {
    capsule = obj.attr("__dlpack__")(py::arg("max_version") = py::make_tuple(kMajorVersion, kMinorVersion));
  } catch (const py::error_already_set& e) {
    if (!e.matches(PyExc_TypeError)) throw;
    capsule = obj.attr("__dlpack__")();  // a producer that predates DLPack 1.0
  }
  return from_capsule(capsule);
}

void bind_dlpack(py::module_& m, py::class_<Tensor>& cls) {
  cls.def("__dlpack__", &dlpack, py::kw_only(), py::arg("stream") = py::none(),
          py::arg("max_version") = py::none(), py::arg("dl_device") = py::none(),
          py::arg("copy") = py::none())
      .def("__dlpack_device__", [](const Tensor& t) {
        const DLDevice d = to_dl(t.device());
        return py::make_tuple(d.device_type, d.device_id);
      });
  m.def("from_dlpack", &from_dlpack, py::arg("obj"),
        "Zero-copy tensor from any object that speaks DLPack (numpy, torch, ...).");
}

}  // namespace orchard::bindings
