// Hyper-connections in your own model: the usage section of the Python library `hyper-connections`, step
// by step, in hcgrad's C++. Then a small model with mHC that trains, and what it must register to do so.
// Every step checks what it claims and the program exits 1 if one does not hold.
//
// Shapes: B batch, T tokens, D features, S streams. The residual stream x is [B, T, D] in your model;
// between expand_stream and reduce_stream it is [B·S, T, D] (the streams folded into the batch).
#include <hcgrad/hcgrad.h>

#include <iostream>
#include <string>

using namespace hcgrad;

namespace {

int failures = 0;

void expect(bool ok, const std::string& claim) {
  std::cout << (ok ? "  ok    " : "  FAIL  ") << claim << "\n";
  if (!ok) ++failures;
}

double max_difference(const Tensor& a, const Tensor& b) { return max(abs(a - b)).item(); }

constexpr int64_t B = 2, T = 8, D = 32, S = 4;

// A model of your own: `depth` blocks, each an MLP branch behind a manifold-constrained hyper-connection.
// For the connections to train, the model registers (1) each connection's module and (2) the expand / reduce
// modules, beside its own layers: then parameters() holds the connection weights (static_alpha, static_beta,
// the dynamic projections, ...) and the optimizer updates them. A connection that is only called, never
// registered, runs but keeps its initial weights.
struct TinyNet : nn::Module {
  std::vector<std::shared_ptr<nn::Linear>> fc;
  std::vector<nn::Connection> connections;
  std::shared_ptr<nn::Linear> head;
  nn::StreamFunction expand_stream, reduce_stream;

  TinyNet(int64_t depth, Generator& gen)
      : expand_stream(nullptr), reduce_stream(nullptr) {
    auto [init_hc, expand, reduce] = nn::manifold_hyper_connections(S);
    expand_stream = expand;
    reduce_stream = reduce;
    register_module("expand_stream", expand.module());  // (2): may hold parameters (stream embeddings)
    register_module("reduce_stream", reduce.module());
    for (int64_t i = 0; i < depth; ++i) {
      auto layer = register_module("fc" + std::to_string(i), std::make_shared<nn::Linear>(D, D, gen));
      fc.push_back(layer);
      nn::Branch branch = [layer](const Tensor& x) { return gelu(layer->forward(x)); };
      connections.push_back(init_hc({.dim = D, .layer_index = i}, branch));
      register_module("hc" + std::to_string(i), connections.back().module());  // (1)
    }
    head = register_module("head", std::make_shared<nn::Linear>(D, 1, gen));
  }

  Tensor forward(const Tensor& x) const {  // [B, T, D] -> [B, T, 1]
    Tensor streams = expand_stream(x);     // [B·S, T, D]
    for (const nn::Connection& hc : connections) streams = hc(streams);
    return head->forward(reduce_stream(streams));
  }
};

}  // namespace

int main() {
  Generator gen(0);
  auto linear = std::make_shared<nn::Linear>(D, D, gen);
  nn::Branch branch = [&](const Tensor& x) { return linear->forward(x); };  // any Tensor -> Tensor function
  const Tensor residual = randn({B, T, D}, {}, gen);

  std::cout << "1. The factory: init, expand and reduce for 4 streams\n";
  // Python: init_hyper_conn, expand_stream, reduce_stream = get_init_and_expand_reduce_stream_functions(4)
  auto [init_hc, expand_stream, reduce_stream] = nn::hyper_connections(S);
  nn::Connection hc_branch = init_hc({.dim = D}, branch);  // init_hyper_conn(dim = 512, branch = branch)
  Tensor x = expand_stream(residual);                       // [B·S, T, D]
  expect(x.shape() == Shape{B * S, T, D}, "expand_stream copies x into 4 streams: [B·S, T, D]");
  x = hc_branch(x);                                         // the branch runs inside the connection
  const Tensor out = reduce_stream(x);                      // [B, T, D]
  expect(out.shape() == residual.shape(), "reduce_stream sums the streams back to [B, T, D]");

  std::cout << "2. The manual form: branch_input, add_residual\n";
  // Python: branch_input, add_residual = hyper_conn(residual); residual = add_residual(branch(branch_input))
  const Tensor streams = expand_stream(residual);
  auto [branch_input, add_residual] = hc_branch(streams);
  expect(branch_input.shape() == residual.shape(), "the branch reads one [B, T, D] mix of the streams");
  const Tensor manual = add_residual(branch(branch_input));
  const Tensor wrapped = hc_branch(streams);
  expect(max_difference(manual, wrapped) == 0, "add_residual(branch(branch_input)) is the wrapped call");

  std::cout << "3. decorate_branch: the connection around a function\n";
  nn::Connection hc = init_hc({.dim = D});  // no branch given
  nn::Branch decorated = hc->decorate_branch(branch);
  auto [input, merge_back] = hc(streams);
  expect(max_difference(decorated(streams), merge_back(branch(input))) == 0,
         "the decorated branch is the manual form");

  std::cout << "4. disable: the same code as a plain residual network\n";
  auto [init_plain, expand_plain, reduce_plain] = nn::hyper_connections(S, {.disable = true});
  const Tensor plain = reduce_plain(init_plain({.dim = D}, branch)(expand_plain(residual)));
  expect(max_difference(plain, residual + branch(residual)) < 1e-6, "disabled, it computes x + branch(x)");

  std::cout << "5. Frac-Connections: one stream cut into 4 fractions\n";
  auto [init_frac, expand_frac, reduce_frac] = nn::hyper_connections(1, {.num_fracs = 4});
  const Tensor frac = reduce_frac(init_frac({.dim = D}, branch)(expand_frac(residual)));
  expect(frac.shape() == residual.shape() && expand_frac(residual).shape() == residual.shape(),
         "fractions split the features, so the residual keeps its shape [B, T, D]");

  std::cout << "6. mHC: residual mixing on the doubly stochastic manifold\n";
  auto [init_mhc, expand_mhc, reduce_mhc] = nn::manifold_hyper_connections(S);
  nn::Connection mhc = init_mhc({.dim = D, .sinkhorn_iters = 20}, branch);
  const Tensor mixed = reduce_mhc(mhc(expand_mhc(residual)));
  expect(mixed.shape() == residual.shape(), "mHC keeps the same interface");
  const std::optional<nn::ConnectionMaps> maps = mhc->maps(expand_mhc(residual));
  const Tensor row_sums = sum(maps->h_res, {-1}), column_sums = sum(maps->h_res, {-2});
  expect(max_difference(row_sums, ones_like(row_sums)) < 1e-3 && max_difference(column_sums, ones_like(column_sums)) < 1e-3,
         "H_res (Sinkhorn) has rows and columns summing to 1");

  std::cout << "7. The papers' forms: Frac as the Frac paper writes it, mHC starting as a pre-norm residual\n";
  // The library's Frac writes every branch fraction into every fraction once trained; the paper's writes
  // fraction j into fraction j only. Both start as x + branch(x).
  nn::Connection frac_paper = init_frac({.dim = D, .variant = nn::HcVariant::Paper}, branch);
  const Tensor frac_paper_out = reduce_frac(frac_paper(expand_frac(residual)));
  expect(frac_paper->name() == "PaperFracConnections" &&
             max_difference(frac_paper_out, residual + branch(residual)) < 1e-6,
         "the Frac paper's form starts as x + branch(x)");
  // mHC's default (the library's) init is not the identity; IdentityLike makes H_post = 1, H_pre ≈ one-hot
  // and H_res ≈ I, so S identical streams each compute x + branch(x).
  nn::Connection mhc_identity = init_mhc({.dim = D, .init = nn::MhcInit::IdentityLike}, branch);
  const Tensor identity_out = reduce_mhc(mhc_identity(expand_mhc(residual)));
  const Tensor pre_norm_residual = (residual + branch(residual)) * double(S);
  expect(max_difference(identity_out, pre_norm_residual) < 1e-4 && max_difference(mixed, pre_norm_residual) > 1e-2,
         "mHC with the identity-like init starts as S copies of x + branch(x); the default init does not");

  std::cout << "8. A model of your own with mHC trains, connections included\n";
  TinyNet model(3, gen);
  const nn::NamedTensors named = model.named_parameters();
  bool registers_connections = false;
  for (const auto& [name, tensor] : named) registers_connections |= name.rfind("hc0.", 0) == 0;
  expect(registers_connections, "parameters() lists the connections' weights (hc0.*), " +
                                    std::to_string(named.size()) + " tensors in all");
  nn::AdamW optimizer(model.parameters(), {.lr = 3e-3, .weight_decay = 0.0});
  const Tensor inputs = randn({B, T, D}, {}, gen);
  const Tensor targets = tanh(sum(inputs, {-1}, true));  // [B, T, 1]: a smooth function to fit
  double first = 0, last = 0;
  for (int step = 0; step < 60; ++step) {
    optimizer.zero_grad();
    const Tensor error = model.forward(inputs) - targets;
    Tensor loss = mean(error * error);
    loss.backward();
    optimizer.step();
    (step == 0 ? first : last) = loss.item();
  }
  expect(last < 0.5 * first, "the loss fell from " + std::to_string(first) + " to " + std::to_string(last));
  const Tensor alpha_grad = model.connections[0]->named_parameters().begin()->second.grad();
  expect(alpha_grad.defined(), "the connection's first weight received a gradient");

  std::cout << (failures == 0 ? "all checks passed\n" : std::to_string(failures) + " check(s) failed\n");
  return failures == 0 ? 0 : 1;
}
