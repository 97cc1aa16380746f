// hcgrad: one include for the whole library: #include <hcgrad/hcgrad.h>.
// It includes no third-party header. nn/diagnostics.h (amax_gain, composite_to_top, unfolded_connection_matrix,
// cosine_similarity_spread) hands out Eigen matrices, so it is included on its own: <hcgrad/nn/diagnostics.h>.
#pragma once

#include "hcgrad/autograd/engine.h"     // defines: backward (Tensor::backward runs it)
#include "hcgrad/autograd/grad_mode.h"  // defines: NoGradGuard, is_grad_enabled
#include "hcgrad/autograd/gradcheck.h"  // defines: gradcheck
#include "hcgrad/autograd/node.h"       // defines: Node, record
#include "hcgrad/core/cpu_allocator.h"  // defines: cpu_memory_stats, cpu_empty_cache (the caching CPU allocator)
#include "hcgrad/core/creation.h"       // defines: zeros, ones, full, arange, from_vector, tensor, rand, randn
#include "hcgrad/core/ops.h"            // defines: every op (add ... layer_norm)
#include "hcgrad/core/parallel.h"       // defines: set_num_threads
#include "hcgrad/core/profile.h"        // defines: profile::enable, profile::report (the per-op time breakdown)
#include "hcgrad/core/random.h"         // defines: Generator, manual_seed
#include "hcgrad/core/tensor.h"         // defines: Tensor, TensorOptions
#include "hcgrad/cuda/runtime.h"         // defines: cuda::is_available, synchronize, memory_stats, set_allow_tf32
#include "hcgrad/nn/attention.h"   // defines: SelfAttention
#include "hcgrad/nn/checkpoint.h"  // defines: save_safetensors, load_safetensors, parse_safetensors, copy_into
#include "hcgrad/nn/data.h"        // defines: ByteTokenizer, TextDataset, sample_batch, eval_batches, default_corpus
#include "hcgrad/nn/distributed.h"  // defines: distributed::init, rank, world_size, all_reduce, broadcast, GradientAverager
#include "hcgrad/nn/gpt.h"         // defines: GPTConfig, MLP, Block, GPT
#include "hcgrad/nn/connection.h"  // defines: ConnectionModule, Connection, Residual, DepthResidual, Transform
#include "hcgrad/nn/frac_paper.h"  // defines: PaperFracConnections
#include "hcgrad/nn/hyper_connections.h"  // defines: HyperConnections, ScaledRMSNorm, make_hyper_connections
#include "hcgrad/nn/hyper_connections_channel_first.h"  // defines: ChannelFirstHyperConnections
#include "hcgrad/nn/hyper_connections_factory.h"  // defines: hyper_connections, manifold_hyper_connections
#include "hcgrad/nn/hyper_connections_multi_branch.h"  // defines: MultiBranchHyperConnections
#include "hcgrad/nn/hyper_connections_multi_input.h"  // defines: MultiInputHyperConnections
#include "hcgrad/nn/mhc.h"         // defines: ManifoldHyperConnections
#include "hcgrad/nn/mhc_paper.h"   // defines: PaperManifoldHyperConnections
#include "hcgrad/nn/residuals.h"   // defines: GatedResidual, GRUGatedResidual, OrthogonalResidualUpdate, MVSplitResidualUpdate
#include "hcgrad/nn/streams.h"     // defines: ExpandStreams, ReduceStreams, AttentionPoolReduceStream
#include "hcgrad/nn/layers.h"      // defines: Linear, Embedding, LayerNorm, RMSNorm, Dropout
#include "hcgrad/nn/module.h"      // defines: Module, ModuleList
#include "hcgrad/nn/named_tensors.h"  // defines: NamedTensors
#include "hcgrad/nn/optim.h"       // defines: SGD, Adam, AdamW, clip_grad_norm_, CosineSchedule
