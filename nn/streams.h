// Expand one residual into S streams and reduce S streams back to one, in either stream layout
// (nn/connection.h StreamLayout): the `expand_stream` / `reduce_stream` of the hyper-connections factory.
// A model expands once after its embeddings and reduces once before its final norm (HC paper §2, Fig. 2).
//
//   ExpandStreams               x [B, N*, D] -> [B·S, N*, D] (row b·S + s = x[b])  or  [B, N*, S, D]
//                               optionally + E[s], a learned per-stream vector (E [S, D], init 0: "stream_embed")
//   ReduceStreams               the sum of the streams, back to [B, N*, D]
//   AttentionPoolReduceStream   a_s = W x_s (W [D, D], init I), out = Σ_s softmax_s(a)_s ⊙ x_s, the softmax over
//                               the streams per feature (so at init a softmax-weighted mean that favours large values)
#pragma once

#include "hcgrad/nn/connection.h"
#include "hcgrad/nn/layers.h"

namespace hcgrad::nn {

struct ExpandStreamsOptions {
  StreamLayout layout = StreamLayout::InBatch;
  int64_t dim = 0;               // D; needed with stream_embed
  bool stream_embed = false;     // add a learned per-stream vector after the copy
  bool channel_first = false;    // InBatch only: x is [B, D, N*] and E is added along dim 1
  DType dtype = DType::Float32;
};

class ExpandStreams : public Transform {
 public:
  ExpandStreams(int64_t num_streams, ExpandStreamsOptions options = {});
  Tensor forward(const Tensor& x) const override;

  int64_t num_streams;
  ExpandStreamsOptions options;
  Tensor stream_embed;  // [S, D] when options.stream_embed
};

class ReduceStreams : public Transform {
 public:
  explicit ReduceStreams(int64_t num_streams, StreamLayout layout = StreamLayout::InBatch);
  Tensor forward(const Tensor& streams) const override;

  int64_t num_streams;
  StreamLayout layout;
};

struct AttentionPoolOptions {
  StreamLayout layout = StreamLayout::InBatch;
  bool channel_first = false;  // InBatch only: [B·S, D, N*] -> [B, D, N*]
  DType dtype = DType::Float32;
};

class AttentionPoolReduceStream : public Transform {
 public:
  AttentionPoolReduceStream(int64_t num_streams, int64_t dim, AttentionPoolOptions options = {});
  Tensor forward(const Tensor& streams) const override;

  int64_t num_streams, dim;
  AttentionPoolOptions options;
  std::shared_ptr<Linear> to_attn_logits;  // bias-free, weight [D, D] init I
};

}  // namespace hcgrad::nn
