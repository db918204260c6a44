// Yt8mCanonicalFrames: the frames of a YouTube-8M SequenceExample written in the canonical
// layout, decoded in one pass without building a string per frame.
//
// The reader's fast path (yt8m_kd/data/native/__init__.py, docs/reader-fast-path.md). A record is
// accepted (ok = true) only when its bytes are exactly, at every level, what a protobuf writer
// produces for a record whose frames pass every frame check:
//
//   SequenceExample  = [0x0a len context] [0x12 len feature_lists], nothing else
//   feature_lists    = one map entry per requested feature name, in any order, no other entry:
//                      [0x0a len [0x0a len key] [0x12 len FeatureList]]
//   FeatureList      = T >= 1 frames, each [0x0a len Feature]
//   Feature          = [0x0a len BytesList] (bytes_list, nothing else)
//   BytesList        = [0x0a len value] (one value of exactly feature_size bytes)
//
// with T the same for every feature name. Such bytes have one parse, so TensorFlow's parser
// reads the same frames from them. Anything else (another field order, an extra or repeated
// feature list, a frame of the wrong size, different frame counts, malformed lengths) gives
// ok = false and frames [0, width]: the caller then parses the record with TensorFlow's parser,
// which finds and names the problem. The op never fails on its input. The context is not read
// here: the caller parses it.
//
// Output: ok [] bool; frames [min(T, max_frames), sum(feature_sizes)] uint8, the features of a
// frame side by side in feature_names order (what the reader's decode gives); num_frames [] int32,
// T (0 when not ok).
//
// Labels (the record's context labels, parsed by the caller) are checked here too, so that a
// canonical record needs no per-label TensorFlow ops: labels_ok [] bool, every label in
// [0, num_classes); multi_hot [num_classes] float32, 1 at each label in range (num_classes = 0:
// labels not read, an empty vector).

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace yt8m_kd {

using ::tensorflow::DEVICE_CPU;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::tstring;

REGISTER_OP("Yt8mCanonicalFrames")
    .Input("serialized: string")
    .Input("labels: int64")
    .Attr("feature_names: list(string)")
    .Attr("feature_sizes: list(int)")
    .Attr("max_frames: int")
    .Attr("num_classes: int")
    .Output("ok: bool")
    .Output("frames: uint8")
    .Output("num_frames: int32")
    .Output("labels_ok: bool")
    .Output("multi_hot: float")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      std::vector<int64_t> sizes;
      TF_RETURN_IF_ERROR(c->GetAttr("feature_sizes", &sizes));
      int64_t width = 0;
      for (int64_t size : sizes) width += size;
      int64_t num_classes = 0;
      TF_RETURN_IF_ERROR(c->GetAttr("num_classes", &num_classes));
      c->set_output(0, c->Scalar());
      c->set_output(1, c->Matrix(c->UnknownDim(), width));
      c->set_output(2, c->Scalar());
      c->set_output(3, c->Scalar());
      c->set_output(4, c->Vector(num_classes));
      return ::absl::OkStatus();
    });

namespace {

struct Span {
  const uint8_t* begin = nullptr;
  const uint8_t* end = nullptr;
};

// A base-128 varint at p (protobuf wire format); advances p. False when it runs past end or
// over 10 bytes.
bool ReadVarint(const uint8_t*& p, const uint8_t* end, uint64_t* value) {
  uint64_t result = 0;
  for (int shift = 0; shift < 70 && p < end; shift += 7) {
    const uint8_t byte = *p++;
    result |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *value = result;
      return true;
    }
  }
  return false;
}

// A length-delimited field with tag byte `tag` at p whose body fits before end; advances p past
// it and sets body.
bool ReadField(const uint8_t*& p, const uint8_t* end, uint8_t tag, Span* body) {
  if (p >= end || *p != tag) return false;
  ++p;
  uint64_t length = 0;
  if (!ReadVarint(p, end, &length)) return false;
  if (length > static_cast<uint64_t>(end - p)) return false;
  body->begin = p;
  body->end = p + length;
  p = body->end;
  return true;
}

// A field that must fill `span` exactly: [tag len body] and nothing after it.
bool OnlyField(Span span, uint8_t tag, Span* body) {
  const uint8_t* p = span.begin;
  return ReadField(p, span.end, tag, body) && p == span.end;
}

// The frame values of a FeatureList: every frame one bytes value of exactly `size` bytes.
bool FrameValues(Span list, int64_t size, std::vector<const uint8_t*>* values) {
  const uint8_t* p = list.begin;
  while (p < list.end) {
    Span feature, bytes_list, value;
    if (!ReadField(p, list.end, 0x0a, &feature)) return false;
    if (!OnlyField(feature, 0x0a, &bytes_list)) return false;
    if (!OnlyField(bytes_list, 0x0a, &value)) return false;
    if (value.end - value.begin != size) return false;
    values->push_back(value.begin);
  }
  return true;
}

}  // namespace

class Yt8mCanonicalFramesOp : public OpKernel {
 public:
  explicit Yt8mCanonicalFramesOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("feature_names", &names_));
    OP_REQUIRES_OK(context, context->GetAttr("feature_sizes", &sizes_));
    OP_REQUIRES_OK(context, context->GetAttr("max_frames", &max_frames_));
    OP_REQUIRES_OK(context, context->GetAttr("num_classes", &num_classes_));
    OP_REQUIRES(context, num_classes_ >= 0,
                ::absl::InvalidArgumentError("num_classes must be >= 0"));
    OP_REQUIRES(context, names_.size() == sizes_.size() && !names_.empty(),
                ::absl::InvalidArgumentError(
                    "feature_names and feature_sizes must be non-empty and of one length"));
    width_ = 0;
    for (int64_t size : sizes_) width_ += size;
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& input = context->input(0);
    OP_REQUIRES(context, input.dims() == 0,
                ::absl::InvalidArgumentError("serialized must be a scalar"));
    const tstring& record = input.scalar<tstring>()();
    std::vector<std::vector<const uint8_t*>> values(names_.size());
    const bool ok = Parse(record, &values);
    const int64_t frames = ok ? std::min<int64_t>(values[0].size(), max_frames_) : 0;

    Tensor* ok_out = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, TensorShape({}), &ok_out));
    ok_out->scalar<bool>()() = ok;
    Tensor* frames_out = nullptr;
    OP_REQUIRES_OK(context,
                   context->allocate_output(1, TensorShape({frames, width_}), &frames_out));
    Tensor* count_out = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(2, TensorShape({}), &count_out));
    count_out->scalar<int32_t>()() = ok ? static_cast<int32_t>(values[0].size()) : 0;
    uint8_t* out = frames_out->flat<uint8_t>().data();
    for (int64_t t = 0; t < frames; ++t) {
      for (size_t f = 0; f < names_.size(); ++f) {
        std::memcpy(out, values[f][t], sizes_[f]);
        out += sizes_[f];
      }
    }

    const auto labels = context->input(1).flat<int64_t>();
    Tensor* labels_ok_out = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(3, TensorShape({}), &labels_ok_out));
    Tensor* multi_hot_out = nullptr;
    OP_REQUIRES_OK(context,
                   context->allocate_output(4, TensorShape({num_classes_}), &multi_hot_out));
    auto multi_hot = multi_hot_out->flat<float>();
    multi_hot.setZero();
    bool labels_ok = true;
    for (int64_t i = 0; i < labels.size(); ++i) {
      if (labels(i) >= 0 && labels(i) < num_classes_) {
        multi_hot(labels(i)) = 1.0f;
      } else {
        labels_ok = false;
      }
    }
    labels_ok_out->scalar<bool>()() = labels_ok;
  }

 private:
  bool Parse(const tstring& record, std::vector<std::vector<const uint8_t*>>* values) const {
    const auto* begin = reinterpret_cast<const uint8_t*>(record.data());
    const uint8_t* end = begin + record.size();
    const uint8_t* p = begin;
    Span context, feature_lists;
    if (!ReadField(p, end, 0x0a, &context)) return false;
    if (!ReadField(p, end, 0x12, &feature_lists) || p != end) return false;

    std::vector<bool> found(names_.size(), false);
    const uint8_t* q = feature_lists.begin;
    while (q < feature_lists.end) {
      Span entry, key, list;
      if (!ReadField(q, feature_lists.end, 0x0a, &entry)) return false;
      const uint8_t* e = entry.begin;
      if (!ReadField(e, entry.end, 0x0a, &key)) return false;
      if (!ReadField(e, entry.end, 0x12, &list) || e != entry.end) return false;
      const std::string name(reinterpret_cast<const char*>(key.begin), key.end - key.begin);
      size_t index = 0;
      while (index < names_.size() && names_[index] != name) ++index;
      if (index == names_.size() || found[index]) return false;  // not requested, or repeated
      found[index] = true;
      if (!FrameValues(list, sizes_[index], &(*values)[index])) return false;
    }
    for (size_t f = 0; f < names_.size(); ++f) {
      if (!found[f] || (*values)[f].empty() || (*values)[f].size() != (*values)[0].size() ||
          (*values)[f].size() > INT32_MAX) {
        return false;
      }
    }
    return true;
  }

  std::vector<std::string> names_;
  std::vector<int64_t> sizes_;
  int64_t max_frames_ = 0;
  int64_t num_classes_ = 0;
  int64_t width_ = 0;
};

REGISTER_KERNEL_BUILDER(Name("Yt8mCanonicalFrames").Device(DEVICE_CPU), Yt8mCanonicalFramesOp);

}  // namespace yt8m_kd
