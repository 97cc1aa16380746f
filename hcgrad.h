// hcgrad: one include for the whole library.
#pragma once

#include "autograd/grad_mode.h"  // defines: NoGradGuard, is_grad_enabled
#include "autograd/gradcheck.h"  // defines: gradcheck
#include "autograd/node.h"       // defines: Node, record, backward
#include "core/cpu_allocator.h"  // defines: cpu_memory_stats, cpu_empty_cache (the caching CPU allocator)
#include "core/creation.h"       // defines: zeros, ones, full, arange, from_vector, tensor, rand, randn
#include "core/ops.h"            // defines: every op (add ... layer_norm)
#include "core/parallel.h"       // defines: set_num_threads
#include "core/profile.h"        // defines: profile::enable, profile::report (the per-op time breakdown)
#include "core/random.h"         // defines: Generator, manual_seed
#include "core/tensor.h"         // defines: Tensor, TensorOptions
#include "cuda/runtime.h"         // defines: cuda::is_available, synchronize, memory_stats, set_allow_tf32
#include "nn/attention.h"   // defines: SelfAttention
#include "nn/checkpoint.h"  // defines: save_safetensors, load_safetensors, parse_safetensors, copy_into
#include "nn/diagnostics.h" // defines: amax_gain, composite_to_top, unfolded_connection_matrix, cosine_similarity_spread
#include "nn/data.h"        // defines: ByteTokenizer, TextDataset, sample_batch, eval_batches, default_corpus
#include "nn/gpt.h"         // defines: GPTConfig, MLP, Block, GPT
#include "nn/connection.h"  // defines: ConnectionModule, Connection, Residual, DepthResidual, Transform
#include "nn/hyper_connections.h"  // defines: HyperConnections, ScaledRMSNorm
#include "nn/hyper_connections_channel_first.h"  // defines: ChannelFirstHyperConnections
#include "nn/hyper_connections_factory.h"  // defines: hyper_connections, manifold_hyper_connections
#include "nn/hyper_connections_multi_branch.h"  // defines: MultiBranchHyperConnections
#include "nn/hyper_connections_multi_input.h"  // defines: MultiInputHyperConnections
#include "nn/mhc.h"         // defines: ManifoldHyperConnections
#include "nn/mhc_paper.h"   // defines: PaperManifoldHyperConnections
#include "nn/residuals.h"   // defines: GatedResidual, GRUGatedResidual, OrthogonalResidualUpdate, MVSplitResidualUpdate
#include "nn/streams.h"     // defines: ExpandStreams, ReduceStreams, AttentionPoolReduceStream
#include "nn/layers.h"      // defines: Linear, Embedding, LayerNorm, RMSNorm, Dropout
#include "nn/module.h"      // defines: Module, ModuleList
#include "nn/named_tensors.h"  // defines: NamedTensors
#include "nn/optim.h"       // defines: SGD, Adam, AdamW, clip_grad_norm_, CosineSchedule
