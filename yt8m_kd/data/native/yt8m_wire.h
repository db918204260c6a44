// The canonical layout of a YouTube-8M SequenceExample, read in one pass over its bytes.
//
// Shared by the two ops of this library (yt8m_frames.cc, yt8m_records_dataset.cc; see
// docs/reader-fast-path.md). A reader here accepts bytes only when they are exactly, at every
// level, what a protobuf writer produces, so that they have one parse: TensorFlow's parser reads
// the same values from them. Any other bytes are refused (false), never guessed at; the caller
// then has TensorFlow parse the record, which finds and names the problem.
//
//   SequenceExample  = [0x0a len context] [0x12 len feature_lists], nothing else
//   feature_lists    = one map entry per requested feature name, in any order, no other entry:
//                      [0x0a len [0x0a len key] [0x12 len FeatureList]]
//   FeatureList      = T >= 1 frames, each [0x0a len Feature]
//   Feature          = [0x0a len BytesList] (bytes_list, nothing else)
//   BytesList        = [0x0a len value] (one value of exactly feature_size bytes)
//
// with T the same for every feature name (`CanonicalFrames`). The context (`CanonicalContext`):
//
//   context          = map entries, in any order, exactly one id entry ("id" or "video_id") and
//                      one "labels" entry, no other: [0x0a len [0x0a len key] [0x12 len Feature]]
//   id Feature       = [0x0a len [0x0a len value]]: one non-empty bytes value
//   labels Feature   = [0x1a len [0x0a len packed]]: int64_list, packed, >= 1 label, each a
//                      varint of at most 5 bytes (so its value is the same for every reader)
//                      in [0, num_classes)

#ifndef YT8M_KD_DATA_NATIVE_YT8M_WIRE_H_
#define YT8M_KD_DATA_NATIVE_YT8M_WIRE_H_

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace yt8m_kd {
namespace wire {

struct Span {
  const uint8_t* begin = nullptr;
  const uint8_t* end = nullptr;
};

// A base-128 varint at p (protobuf wire format) of at most max_bytes bytes; advances p. False
// when it runs past end or over max_bytes.
inline bool ReadVarint(const uint8_t*& p, const uint8_t* end, uint64_t* value,
                       int max_bytes = 10) {
  uint64_t result = 0;
  for (int shift = 0; shift < 7 * max_bytes && p < end; shift += 7) {
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
inline bool ReadField(const uint8_t*& p, const uint8_t* end, uint8_t tag, Span* body) {
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
inline bool OnlyField(Span span, uint8_t tag, Span* body) {
  const uint8_t* p = span.begin;
  return ReadField(p, span.end, tag, body) && p == span.end;
}

// A map entry [0x0a len [0x0a len key] [0x12 len value]] at p; advances p.
inline bool MapEntry(const uint8_t*& p, const uint8_t* end, Span* key, Span* value) {
  Span entry;
  if (!ReadField(p, end, 0x0a, &entry)) return false;
  const uint8_t* e = entry.begin;
  return ReadField(e, entry.end, 0x0a, key) && ReadField(e, entry.end, 0x12, value) &&
         e == entry.end;
}

inline bool KeyIs(Span key, const std::string& name) {
  return static_cast<size_t>(key.end - key.begin) == name.size() &&
         std::equal(name.begin(), name.end(), reinterpret_cast<const char*>(key.begin));
}

// The frame values of a FeatureList: every frame one bytes value of exactly `size` bytes.
inline bool FrameValues(Span list, int64_t size, std::vector<const uint8_t*>* values) {
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

// The top level: [0x0a len context] [0x12 len feature_lists] and nothing else.
inline bool SplitRecord(const uint8_t* begin, const uint8_t* end, Span* context,
                        Span* feature_lists) {
  const uint8_t* p = begin;
  return ReadField(p, end, 0x0a, context) && ReadField(p, end, 0x12, feature_lists) && p == end;
}

// The frames of the feature lists: (*values)[f] the T frame values of names[f], T >= 1 the same
// for every name.
inline bool CanonicalFrames(Span feature_lists, const std::vector<std::string>& names,
                            const std::vector<int64_t>& sizes,
                            std::vector<std::vector<const uint8_t*>>* values) {
  std::vector<bool> found(names.size(), false);
  const uint8_t* q = feature_lists.begin;
  while (q < feature_lists.end) {
    Span key, list;
    if (!MapEntry(q, feature_lists.end, &key, &list)) return false;
    size_t index = 0;
    while (index < names.size() && !KeyIs(key, names[index])) ++index;
    if (index == names.size() || found[index]) return false;  // not requested, or repeated
    found[index] = true;
    if (!FrameValues(list, sizes[index], &(*values)[index])) return false;
  }
  for (size_t f = 0; f < names.size(); ++f) {
    if (!found[f] || (*values)[f].empty() || (*values)[f].size() != (*values)[0].size() ||
        (*values)[f].size() > INT32_MAX) {
      return false;
    }
  }
  return true;
}

// The context's id (non-empty) and labels (>= 1, every one in [0, num_classes)).
inline bool CanonicalContext(Span context, int64_t num_classes, Span* id,
                             std::vector<int64_t>* labels) {
  static const std::string kId = "id", kVideoId = "video_id", kLabels = "labels";
  bool have_id = false, have_labels = false;
  const uint8_t* p = context.begin;
  while (p < context.end) {
    Span key, feature;
    if (!MapEntry(p, context.end, &key, &feature)) return false;
    if (KeyIs(key, kId) || KeyIs(key, kVideoId)) {
      Span bytes_list;
      if (have_id || !OnlyField(feature, 0x0a, &bytes_list)) return false;
      if (!OnlyField(bytes_list, 0x0a, id) || id->begin == id->end) return false;
      have_id = true;
    } else if (KeyIs(key, kLabels)) {
      Span int64_list, packed;
      if (have_labels || !OnlyField(feature, 0x1a, &int64_list)) return false;
      if (!OnlyField(int64_list, 0x0a, &packed) || packed.begin == packed.end) return false;
      for (const uint8_t* v = packed.begin; v < packed.end;) {
        uint64_t label = 0;
        if (!ReadVarint(v, packed.end, &label, 5)) return false;
        if (label >= static_cast<uint64_t>(num_classes)) return false;
        labels->push_back(static_cast<int64_t>(label));
      }
      have_labels = true;
    } else {
      return false;  // a context feature the reader does not read
    }
  }
  return have_id && have_labels;
}

}  // namespace wire
}  // namespace yt8m_kd

#endif  // YT8M_KD_DATA_NATIVE_YT8M_WIRE_H_
