// Yt8mRecordsDataset: the good records of one YouTube-8M TFRecord file, read, checked and decoded
// in one place, up to the first record that is not plainly good.
//
// The reader's whole-file fast path (docs/reader-fast-path.md; yt8m_kd/data/native/__init__.py
// `records_dataset`, yt8m_kd/data/yt8m.py). The reader's general pipeline runs four tf.data
// functions per record (byte accounting, parse and checks, the scan that reports problems in file
// order, a filter), and a function call costs tens of microseconds; this dataset runs none. It
// reads the file with TensorFlow's own TFRecord reader (the same CRC checks as TFRecordDataset)
// and emits, per record, exactly the element the general pipeline emits for a good record:
//
//   _emit [] bool (true), frames [min(T, max_frames), width] uint8, labels [num_classes] float32
//   (multi-hot), num_frames [] int32 (the frames kept), video_id [] string
//
// (the order of the reader's element dict's sorted keys), for every record in the canonical
// layout of yt8m_wire.h: an id, >= 1 label, every label in range, frames passing every frame
// check. Such a record has one parse and no problem, so the general pipeline would emit the same.
//
// It stops at the first record it does not take (any other layout, a problem, no labels, a read
// error or a file cut short) and leaves the rest of the file to the general pipeline: the
// resume point (the record's index and byte offset, and the id of the record before it) is
// kept under `token` for Yt8mResumePoint, which the reader calls once this dataset has ended.
// A file read to its end (and to the size it had when the pipeline was built) leaves index -1:
// nothing to resume. Yt8mReadToken gives each read of a file its own token.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/dataset.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/lib/io/record_reader.h"
#include "tensorflow/core/platform/env.h"
#include "yt8m_wire.h"

namespace yt8m_kd {
namespace {

using ::tensorflow::AllocatorAttributes;
using ::tensorflow::AttrValue;
using ::tensorflow::DataTypeVector;
using ::tensorflow::DEVICE_CPU;
using ::tensorflow::data::IteratorContext;
using ::tensorflow::data::IteratorStateReader;
using ::tensorflow::data::IteratorStateWriter;
using ::tensorflow::Node;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::PartialTensorShape;
using ::tensorflow::data::SerializationContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::tstring;
using ::tensorflow::data::DatasetBase;
using ::tensorflow::data::DatasetContext;
using ::tensorflow::data::DatasetIterator;
using ::tensorflow::data::DatasetOpKernel;
using ::tensorflow::data::IteratorBase;

// TFRecordDataset's default read buffer.
constexpr int64_t kReadBufferBytes = 256 * 1024;

// Where a file's fast read stopped: index -1 when it read the whole file.
struct ResumePoint {
  int64_t index = -1;
  int64_t offset = 0;
  std::string previous_id;
};

// Resume points by token, from the dataset's end to Yt8mResumePoint (which removes them).
class ResumePoints {
 public:
  static ResumePoints& Get() {
    static ResumePoints* points = new ResumePoints;
    return *points;
  }
  void Put(int64_t token, ResumePoint point) {
    std::lock_guard<std::mutex> lock(mu_);
    points_[token] = std::move(point);
  }
  bool Take(int64_t token, ResumePoint* point) {
    std::lock_guard<std::mutex> lock(mu_);
    auto found = points_.find(token);
    if (found == points_.end()) return false;
    *point = std::move(found->second);
    points_.erase(found);
    return true;
  }

 private:
  std::mutex mu_;
  std::map<int64_t, ResumePoint> points_;
};

std::atomic<int64_t> next_token{1};

struct Config {
  std::vector<std::string> names;
  std::vector<int64_t> sizes;
  int64_t width = 0;
  int64_t max_frames = 0;
  int64_t num_classes = 0;
  DataTypeVector output_types;
  std::vector<PartialTensorShape> output_shapes;
};

class RecordsDataset : public DatasetBase {
 public:
  RecordsDataset(OpKernelContext* ctx, std::string path, int64_t size, int64_t token,
                 std::shared_ptr<const Config> config)
      : DatasetBase(DatasetContext(ctx)),
        path_(std::move(path)),
        size_(size),
        token_(token),
        config_(std::move(config)) {}

  std::unique_ptr<IteratorBase> MakeIteratorInternal(const std::string& prefix) const override {
    return std::make_unique<Iterator>(Iterator::Params{this, prefix + "::Yt8mRecords"});
  }
  const DataTypeVector& output_dtypes() const override { return config_->output_types; }
  const std::vector<PartialTensorShape>& output_shapes() const override {
    return config_->output_shapes;
  }
  std::string DebugString() const override { return "Yt8mRecordsDatasetOp::Dataset"; }
  ::absl::Status InputDatasets(std::vector<const DatasetBase*>* inputs) const override {
    return ::absl::OkStatus();
  }
  ::absl::Status CheckExternalState() const override { return ::absl::OkStatus(); }

 protected:
  ::absl::Status AsGraphDefInternal(SerializationContext* ctx, DatasetGraphDefBuilder* b,
                                    Node** output) const override {
    Node *path = nullptr, *size = nullptr, *token = nullptr;
    TF_RETURN_IF_ERROR(b->AddScalar(tstring(path_), &path));
    TF_RETURN_IF_ERROR(b->AddScalar(size_, &size));
    TF_RETURN_IF_ERROR(b->AddScalar(token_, &token));
    AttrValue names, sizes, max_frames, num_classes, types, shapes;
    b->BuildAttrValue(config_->names, &names);
    b->BuildAttrValue(config_->sizes, &sizes);
    b->BuildAttrValue(config_->max_frames, &max_frames);
    b->BuildAttrValue(config_->num_classes, &num_classes);
    b->BuildAttrValue(config_->output_types, &types);
    b->BuildAttrValue(config_->output_shapes, &shapes);
    return b->AddDataset(this, {path, size, token},
                         {{"feature_names", names},
                          {"feature_sizes", sizes},
                          {"max_frames", max_frames},
                          {"num_classes", num_classes},
                          {"output_types", types},
                          {"output_shapes", shapes}},
                         output);
  }

 private:
  class Iterator : public DatasetIterator<RecordsDataset> {
   public:
    explicit Iterator(const Params& params) : DatasetIterator<RecordsDataset>(params) {}

    ::absl::Status GetNextInternal(IteratorContext* ctx, std::vector<Tensor>* out_tensors,
                                   bool* end_of_sequence) override {
      std::lock_guard<std::mutex> lock(mu_);
      *end_of_sequence = true;
      if (stopped_) return ::absl::OkStatus();
      const RecordsDataset& data = *dataset();
      if (reader_ == nullptr) {
        // A file that cannot be opened is the general pipeline's to report.
        if (!ctx->env()->NewRandomAccessFile(data.path_, &file_).ok()) return Stop(false);
        auto options = ::tensorflow::io::RecordReaderOptions::CreateRecordReaderOptions("");
        options.buffer_size = kReadBufferBytes;
        reader_ = std::make_unique<::tensorflow::io::RecordReader>(file_.get(), options);
      }
      const uint64_t start = offset_;
      const ::absl::Status read = reader_->ReadRecord(&offset_, &record_);
      if (!read.ok()) {
        offset_ = start;
        // The end of a whole file ends the read; anything else (a damaged or cut-short file)
        // is the general pipeline's.
        const bool whole = ::absl::IsOutOfRange(read) && static_cast<int64_t>(start) >= data.size_;
        return Stop(whole);
      }
      const Config& config = *data.config_;
      const auto* begin = reinterpret_cast<const uint8_t*>(record_.data());
      wire::Span context, feature_lists, id;
      labels_.clear();
      for (auto& values : values_) values.clear();
      values_.resize(config.names.size());
      if (!wire::SplitRecord(begin, begin + record_.size(), &context, &feature_lists) ||
          !wire::CanonicalContext(context, config.num_classes, &id, &labels_) ||
          !wire::CanonicalFrames(feature_lists, config.names, config.sizes, &values_)) {
        offset_ = start;
        return Stop(false);
      }

      const int64_t kept = std::min<int64_t>(values_[0].size(), config.max_frames);
      const AllocatorAttributes host;
      Tensor emit(ctx->allocator(host), ::tensorflow::DT_BOOL, TensorShape({}));
      emit.scalar<bool>()() = true;
      Tensor frames(ctx->allocator(host), ::tensorflow::DT_UINT8, TensorShape({kept, config.width}));
      uint8_t* out = frames.flat<uint8_t>().data();
      for (int64_t t = 0; t < kept; ++t) {
        for (size_t f = 0; f < config.names.size(); ++f) {
          std::memcpy(out, values_[f][t], config.sizes[f]);
          out += config.sizes[f];
        }
      }
      Tensor multi_hot(ctx->allocator(host), ::tensorflow::DT_FLOAT,
                       TensorShape({config.num_classes}));
      multi_hot.flat<float>().setZero();
      for (int64_t label : labels_) multi_hot.flat<float>()(label) = 1.0f;
      Tensor num_frames(ctx->allocator(host), ::tensorflow::DT_INT32, TensorShape({}));
      num_frames.scalar<int32_t>()() = static_cast<int32_t>(kept);
      Tensor video_id(ctx->allocator(host), ::tensorflow::DT_STRING, TensorShape({}));
      previous_id_.assign(reinterpret_cast<const char*>(id.begin), id.end - id.begin);
      video_id.scalar<tstring>()() = previous_id_;

      out_tensors->reserve(5);
      out_tensors->push_back(std::move(emit));
      out_tensors->push_back(std::move(frames));
      out_tensors->push_back(std::move(multi_hot));
      out_tensors->push_back(std::move(num_frames));
      out_tensors->push_back(std::move(video_id));
      ++index_;
      *end_of_sequence = false;
      return ::absl::OkStatus();
    }

   protected:
    std::shared_ptr<::tensorflow::data::model::Node> CreateNode(
        IteratorContext* ctx, ::tensorflow::data::model::Node::Args args) const override {
      return ::tensorflow::data::model::MakeSourceNode(std::move(args));
    }
    ::absl::Status SaveInternal(SerializationContext* ctx, IteratorStateWriter* writer) override {
      return ::absl::UnimplementedError("Yt8mRecordsDataset iterators are not checkpointed");
    }
    ::absl::Status RestoreInternal(IteratorContext* ctx, IteratorStateReader* reader) override {
      return ::absl::UnimplementedError("Yt8mRecordsDataset iterators are not checkpointed");
    }

   private:
    // Ends the read and leaves its resume point (whole: nothing to resume).
    ::absl::Status Stop(bool whole) {
      stopped_ = true;
      ResumePoint point;
      if (!whole) {
        point.index = index_;
        point.offset = static_cast<int64_t>(offset_);
        point.previous_id = previous_id_;
      }
      ResumePoints::Get().Put(dataset()->token_, std::move(point));
      reader_.reset();
      file_.reset();
      return ::absl::OkStatus();
    }

    std::mutex mu_;
    bool stopped_ = false;
    std::unique_ptr<::tensorflow::RandomAccessFile> file_;
    std::unique_ptr<::tensorflow::io::RecordReader> reader_;
    uint64_t offset_ = 0;  // of the next record
    int64_t index_ = 0;    // of the next record
    std::string previous_id_;
    tstring record_;
    std::vector<int64_t> labels_;
    std::vector<std::vector<const uint8_t*>> values_;
  };

  const std::string path_;
  const int64_t size_;
  const int64_t token_;
  const std::shared_ptr<const Config> config_;
};

class RecordsDatasetOp : public DatasetOpKernel {
 public:
  explicit RecordsDatasetOp(OpKernelConstruction* ctx) : DatasetOpKernel(ctx) {
    auto config = std::make_shared<Config>();
    OP_REQUIRES_OK(ctx, ctx->GetAttr("feature_names", &config->names));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("feature_sizes", &config->sizes));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("max_frames", &config->max_frames));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_classes", &config->num_classes));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("output_types", &config->output_types));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("output_shapes", &config->output_shapes));
    OP_REQUIRES(ctx,
                config->names.size() == config->sizes.size() && !config->names.empty() &&
                    config->num_classes > 0 && config->max_frames >= 0,
                ::absl::InvalidArgumentError(
                    "Yt8mRecordsDataset: feature_names and feature_sizes must be non-empty and "
                    "of one length, num_classes > 0 and max_frames >= 0"));
    const DataTypeVector expected = {::tensorflow::DT_BOOL, ::tensorflow::DT_UINT8,
                                     ::tensorflow::DT_FLOAT, ::tensorflow::DT_INT32,
                                     ::tensorflow::DT_STRING};
    OP_REQUIRES(ctx, config->output_types == expected && config->output_shapes.size() == 5,
                ::absl::InvalidArgumentError(
                    "Yt8mRecordsDataset: output_types must be bool, uint8, float, int32, string "
                    "(_emit, frames, labels, num_frames, video_id)"));
    for (int64_t size : config->sizes) config->width += size;
    config_ = std::move(config);
  }

 protected:
  void MakeDataset(OpKernelContext* ctx, DatasetBase** output) override {
    tstring path;
    int64_t size = 0, token = 0;
    OP_REQUIRES_OK(ctx, ::tensorflow::data::ParseScalarArgument<tstring>(ctx, "path", &path));
    OP_REQUIRES_OK(ctx, ::tensorflow::data::ParseScalarArgument<int64_t>(ctx, "size", &size));
    OP_REQUIRES_OK(ctx, ::tensorflow::data::ParseScalarArgument<int64_t>(ctx, "token", &token));
    *output = new RecordsDataset(ctx, std::string(path), size, token, config_);
  }

 private:
  std::shared_ptr<const Config> config_;
};

class ReadTokenOp : public OpKernel {
 public:
  explicit ReadTokenOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}
  void Compute(OpKernelContext* ctx) override {
    Tensor* token = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({}), &token));
    token->scalar<int64_t>()() = next_token.fetch_add(1);
  }
};

class ResumePointOp : public OpKernel {
 public:
  explicit ResumePointOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}
  void Compute(OpKernelContext* ctx) override {
    const int64_t token = ctx->input(0).scalar<int64_t>()();
    ResumePoint point;
    OP_REQUIRES(ctx, ResumePoints::Get().Take(token, &point),
                ::absl::InternalError(
                    "Yt8mResumePoint: no resume point for this read (its Yt8mRecordsDataset "
                    "has not ended, or the point was taken already)"));
    Tensor* index = nullptr;
    Tensor* offset = nullptr;
    Tensor* previous_id = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({}), &index));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({}), &offset));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({}), &previous_id));
    index->scalar<int64_t>()() = point.index;
    offset->scalar<int64_t>()() = point.offset;
    previous_id->scalar<tstring>()() = point.previous_id;
  }
};

}  // namespace

REGISTER_OP("Yt8mRecordsDataset")
    .Input("path: string")
    .Input("size: int64")
    .Input("token: int64")
    .Output("handle: variant")
    .Attr("feature_names: list(string)")
    .Attr("feature_sizes: list(int)")
    .Attr("max_frames: int")
    .Attr("num_classes: int")
    .Attr("output_types: list(type) >= 1")
    .Attr("output_shapes: list(shape) >= 1")
    .SetIsStateful()  // a source dataset: never constant-folded
    .SetShapeFn(::tensorflow::shape_inference::ScalarShape);

REGISTER_OP("Yt8mReadToken")
    .Output("token: int64")
    .SetIsStateful()
    .SetShapeFn(::tensorflow::shape_inference::ScalarShape);

REGISTER_OP("Yt8mResumePoint")
    .Input("token: int64")
    .Output("index: int64")
    .Output("offset: int64")
    .Output("previous_id: string")
    .SetIsStateful()
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      for (int i = 0; i < 3; ++i) c->set_output(i, c->Scalar());
      return ::absl::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("Yt8mRecordsDataset").Device(DEVICE_CPU), RecordsDatasetOp);
REGISTER_KERNEL_BUILDER(Name("Yt8mReadToken").Device(DEVICE_CPU), ReadTokenOp);
REGISTER_KERNEL_BUILDER(Name("Yt8mResumePoint").Device(DEVICE_CPU), ResumePointOp);

}  // namespace yt8m_kd
