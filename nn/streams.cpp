// Expand / reduce of the residual streams (nn/streams.h). Shapes: B batch, N* middle dims, S streams, D width.
#include "hcgrad/nn/streams.h"

#include "hcgrad/core/creation.h"
#include "hcgrad/autograd/grad_mode.h"
#include "hcgrad/core/ops.h"

namespace hcgrad::nn {

namespace {

// [B, N*, D] with S inserted: at dim 1 (InBatch, before folding) or before the last dim (NextToFeatures).
Shape with_streams(const Shape& shape, int64_t S, int64_t at) {
  Shape out = shape;
  out.insert(out.begin() + at, S);
  return out;
}

}  // namespace

ExpandStreams::ExpandStreams(int64_t S, ExpandStreamsOptions o) : num_streams(S), options(o) {
  HC_CHECK(S >= 1, Error, "ExpandStreams: num_streams must be >= 1, got ", S);
  HC_CHECK(!o.stream_embed || o.dim > 0, Error, "ExpandStreams: a stream embedding needs dim > 0, got ", o.dim);
  HC_CHECK(!o.channel_first || o.layout == StreamLayout::InBatch, Error,
           "ExpandStreams: channel_first needs the streams in the batch");
  if (o.stream_embed) stream_embed = register_parameter("stream_embed", zeros({S, o.dim}, {.dtype = o.dtype}));
}

Tensor ExpandStreams::forward(const Tensor& x) const {
  const int64_t S = num_streams;
  const int64_t feature_dim = options.channel_first ? 1 : x.dim() - 1;
  HC_CHECK(x.dim() >= 2, ShapeError, "ExpandStreams: input ", x.shape(), " must be [B, ..., D]");
  HC_CHECK(!options.stream_embed || x.shape()[feature_dim] == options.dim, ShapeError, "ExpandStreams: input ",
           x.shape(), " must have dim = ", options.dim, " features (dim ", feature_dim, ")");
  if (options.layout == StreamLayout::NextToFeatures) {
    Tensor out = x.unsqueeze(-2).expand(with_streams(x.shape(), S, x.dim() - 1));  // [B, N*, S, D]
    return stream_embed.defined() ? out + stream_embed : out.contiguous();
  }
  Shape split = with_streams(x.shape(), S, 1), folded = x.shape();  // [B, S, N*, D] and [B·S, N*, D]
  folded[0] *= S;
  Tensor out = x.unsqueeze(1).expand(split);
  if (stream_embed.defined()) {
    // E[s] broadcast over the middle dims: [S, 1.., D] (channel-last) or [S, D, 1..] (channel-first).
    Shape e_shape(split.size() - 1, 1);
    e_shape[0] = S;
    e_shape[feature_dim] = options.dim;
    out = out + stream_embed.reshape(e_shape);
  }
  return out.reshape(folded);
}

ReduceStreams::ReduceStreams(int64_t S, StreamLayout l) : num_streams(S), layout(l) {
  HC_CHECK(S >= 1, Error, "ReduceStreams: num_streams must be >= 1, got ", S);
}

Tensor ReduceStreams::forward(const Tensor& x) const {
  const int64_t S = num_streams;
  if (layout == StreamLayout::NextToFeatures) {
    HC_CHECK(x.dim() >= 3 && x.shape()[x.dim() - 2] == S, ShapeError, "ReduceStreams: streams ", x.shape(),
             " must be [B, ..., S = ", S, ", D]");
    return sum(x, {-2});
  }
  HC_CHECK(x.dim() >= 2 && x.shape()[0] % S == 0, ShapeError, "ReduceStreams: streams ", x.shape(),
           " must be [B·S, ...] with the first dim a multiple of num_streams = ", S);
  Shape split = x.shape();
  split[0] /= S;
  split.insert(split.begin() + 1, S);
  return sum(x.reshape(split), {1});
}

AttentionPoolReduceStream::AttentionPoolReduceStream(int64_t S, int64_t D, AttentionPoolOptions o)
    : num_streams(S), dim(D), options(o) {
  HC_CHECK(S >= 1 && D >= 1, Error, "AttentionPoolReduceStream: num_streams (", S, ") and dim (", D,
           ") must be >= 1");
  HC_CHECK(!o.channel_first || o.layout == StreamLayout::InBatch, Error,
           "AttentionPoolReduceStream: channel_first needs the streams in the batch");
  Generator unused(0);  // the weight is set to I below
  to_attn_logits = register_module(
      "to_attn_logits", std::make_shared<Linear>(D, D, unused, LinearOptions{.bias = false, .dtype = o.dtype}));
  autograd::NoGradGuard no_grad;
  Tensor(to_attn_logits->weight).copy_(eye(D, {.dtype = o.dtype}));
}

Tensor AttentionPoolReduceStream::forward(const Tensor& x) const {
  const int64_t S = num_streams, D = dim;
  Tensor streams;  // [B, N, S, D]: streams next to the features, channels last
  Shape out_shape;
  if (options.layout == StreamLayout::NextToFeatures) {
    HC_CHECK(x.dim() >= 3 && x.shape()[x.dim() - 2] == S && x.shape().back() == D, ShapeError,
             "AttentionPoolReduceStream: streams ", x.shape(), " must be [B, ..., S = ", S, ", D = ", D, "]");
    out_shape = Shape(x.shape().begin(), x.shape().end() - 2);
    out_shape.push_back(D);
    streams = x.reshape({x.shape()[0], -1, S, D});
  } else {
    const int64_t feature_dim = options.channel_first ? 1 : x.dim() - 1;
    HC_CHECK(x.dim() >= 2 && x.shape()[0] % S == 0 && x.shape()[feature_dim] == D, ShapeError,
             "AttentionPoolReduceStream: streams ", x.shape(), " must be [B·S, ", options.channel_first ? "D, ..." : "..., D",
             "] with S = ", S, ", D = ", D);
    out_shape = x.shape();
    out_shape[0] /= S;
    Tensor last = options.channel_first ? x.unsqueeze(-1).transpose(1, -1).squeeze(1) : x;  // [B·S, N*, D]
    streams = last.reshape({out_shape[0], S, -1, D}).transpose(1, 2);
  }
  Tensor weights = softmax(to_attn_logits->forward(streams), 2);  // softmax over the streams, per feature
  Tensor pooled = sum(weights * streams, {2});                 // [B, N, D]
  if (options.layout == StreamLayout::InBatch && options.channel_first) {
    Shape last_shape = out_shape;  // [B, D, N*] -> channel-last [B, N*, D], then back
    last_shape.erase(last_shape.begin() + 1);
    last_shape.push_back(D);
    return pooled.reshape(last_shape).unsqueeze(1).transpose(1, -1).squeeze(-1);
  }
  return pooled.reshape(out_shape);
}

}  // namespace hcgrad::nn
