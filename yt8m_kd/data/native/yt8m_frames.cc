// Yt8mCanonicalFrames: the frames of a YouTube-8M SequenceExample written in the canonical
// layout, decoded in one pass without building a string per frame.
//
// The reader's fast path (yt8m_kd/data/native/__init__.py, docs/reader-fast-path.md), for
// records the reader reads with TensorFlow's reader (yt8m_records_dataset.cc reads whole files).
// A record is accepted (ok = true) only when its bytes are in the canonical layout of
// yt8m_wire.h (`CanonicalFrames`: the top level and the feature lists; the context is skipped)
// with its frames passing every frame check. Anything else (another field order, an extra or
// repeated feature list, a frame of the wrong size, different frame counts, malformed lengths)
// gives ok = false and frames [0, width]: the caller then parses the record with TensorFlow's
// parser, which finds and names the problem. The op never fails on its input. The context is not
// read here: the caller parses it.
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
#include "yt8m_wire.h"

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
    wire::Span context, feature_lists;
    return wire::SplitRecord(begin, begin + record.size(), &context, &feature_lists) &&
           wire::CanonicalFrames(feature_lists, names_, sizes_, values);
  }

  std::vector<std::string> names_;
  std::vector<int64_t> sizes_;
  int64_t max_frames_ = 0;
  int64_t num_classes_ = 0;
  int64_t width_ = 0;
};

REGISTER_KERNEL_BUILDER(Name("Yt8mCanonicalFrames").Device(DEVICE_CPU), Yt8mCanonicalFramesOp);

}  // namespace yt8m_kd
