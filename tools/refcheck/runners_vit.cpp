// Runner for the library's example ViT (its vit.py, kind `vit`): examples/vit_digits' vit::ViT with the "mhc"
// connections, loaded with the reference's state_dict and run end to end on the case's images.
#include "refcheck.h"
#include "vit.h"

namespace refcheck {
namespace {

using namespace hcgrad;

// vit.py's state_dict name -> the same parameter's name in vit::ViT (examples/vit_digits/vit.h):
//   to_patch_embedding.{1,2,3}.*               patch_norm_in / patch_proj / patch_norm_out (0 is the Rearrange)
//   transformer.layers.<l>.0.branch.*          layers.<l>.attn.*     (to_out.0.* -> to_out.*: its Sequential's Linear)
//   transformer.layers.<l>.1.branch.net.{0,1,4}.*   layers.<l>.ff.{norm,fc1,fc2}.* (2, 3, 5 are GELU and dropouts)
//   transformer.layers.<l>.{0,1}.*             layers.<l>.{hc_attn,hc_ff}.* (the mHC's own parameters)
//   transformer.norm.*, mlp_head.*             norm.*, head.*
//   cls_token, pos_embedding                   the same names ([1, D] and [T, D] there, [1, 1, D] and [1, T, D] here)
std::string vit_name(const std::string& name) {
  static const std::vector<std::pair<std::string, std::string>> prefixes{
      {"to_patch_embedding.1.", "patch_norm_in."}, {"to_patch_embedding.2.", "patch_proj."},
      {"to_patch_embedding.3.", "patch_norm_out."}, {"transformer.norm.", "norm."}, {"mlp_head.", "head."}};
  for (const auto& [from, to] : prefixes)
    if (name.starts_with(from)) return to + name.substr(from.size());
  const std::string layers = "transformer.layers.";
  if (!name.starts_with(layers)) return name;
  // transformer.layers.<l>.<block>.<rest>
  const size_t l_end = name.find('.', layers.size());
  const size_t block_end = l_end == std::string::npos ? l_end : name.find('.', l_end + 1);
  if (block_end == std::string::npos) return name;
  const std::string l = name.substr(layers.size(), l_end - layers.size());
  const std::string block = name.substr(l_end + 1, block_end - l_end - 1);
  std::string rest = name.substr(block_end + 1);
  if (block != "0" && block != "1") return name;
  const bool attn = block == "0";
  if (!rest.starts_with("branch.")) return "layers." + l + (attn ? ".hc_attn." : ".hc_ff.") + rest;
  rest = rest.substr(std::string("branch.").size());
  if (attn) {
    if (rest.starts_with("to_out.0.")) rest = "to_out." + rest.substr(std::string("to_out.0.").size());
    return "layers." + l + ".attn." + rest;
  }
  static const std::vector<std::pair<std::string, std::string>> ff{
      {"net.0.", "norm."}, {"net.1.", "fc1."}, {"net.4.", "fc2."}};
  for (const auto& [from, to] : ff)
    if (rest.starts_with(from)) return "layers." + l + ".ff." + to + rest.substr(from.size());
  return name;
}

// The case's config is vit.py's constructor; what vit::ViT does not have (dropout, other mHC options) is refused
// rather than ignored. mhc_kwargs = {num_dynamic_alpha_proposals: 1} is what the "mhc" connection builds:
// ManifoldHyperConnections in the v2 layout [B, T, S, D] with the library's init and 20 Sinkhorn iterations (the
// default of get_init_and_expand_reduce_stream_functions), with a plain repeat expand and a sum reduce.
// home_streams (connection c = 2l attention, 2l + 1 feed-forward) must be c mod S, which vit::ViT uses; it only
// decides the init, so a case that recorded others would still load, but then it was not made for this model.
vit::ViTConfig vit_config(const json& config) {
  vit::ViTConfig c;
  auto size = [&](const char* key) { return config.at(key).get<int64_t>(); };
  auto image = [&](const char* key) {
    HC_CHECK(config.at(key).is_number_integer(), Error, "refcheck: vit: only square images and patches, got ", key,
             " = ", config.at(key).dump());
    return size(key);
  };
  c.image_size = image("image_size");
  c.patch_size = image("patch_size");
  c.channels = config.value("channels", int64_t{3});
  c.classes = size("num_classes");
  c.dim = size("dim");
  c.depth = size("depth");
  c.heads = size("heads");
  c.dim_head = config.value("dim_head", int64_t{64});
  c.mlp_dim = size("mlp_dim");
  c.pool = config.value("pool", std::string("cls"));
  c.streams = config.value("num_residual_streams", int64_t{4});
  c.connection = "mhc";
  HC_CHECK(config.value("dropout", 0.0) == 0.0 && config.value("emb_dropout", 0.0) == 0.0, Error,
           "refcheck: vit: dropout must be 0 (the case runs in eval mode, vit::ViT has none)");
  const json one_proposal = {{"num_dynamic_alpha_proposals", 1}};  // vit.py's default
  const json mhc_kwargs = config.value("mhc_kwargs", one_proposal);
  HC_CHECK(mhc_kwargs == one_proposal, Error,
           "refcheck: vit: the \"mhc\" connection is mHC v2 with mhc_kwargs {num_dynamic_alpha_proposals: 1}, got ",
           mhc_kwargs.dump());
  HC_CHECK(c.streams > 1, Error, "refcheck: vit: one stream disables the library's mHC (plain residual); got ",
           c.streams, " streams");
  if (config.contains("home_streams")) {
    const std::vector<int64_t> homes = config.at("home_streams").get<std::vector<int64_t>>();
    HC_CHECK(int64_t(homes.size()) == 2 * c.depth, Error, "refcheck: vit: ", homes.size(),
             " home streams for ", 2 * c.depth, " connections");
    for (size_t i = 0; i < homes.size(); ++i)
      HC_CHECK(homes[i] == int64_t(i) % c.streams, Error, "refcheck: vit: connection ", i, " has home stream ",
               homes[i], ", vit::ViT's is ", int64_t(i) % c.streams);
  }
  return c;
}

// img [B, C, H, W] -> logits [B, classes]. Every reference parameter is renamed (vit_name) and loaded by element
// count; a reference parameter with no elements (pool = "mean": cls_token (0, D)) has no counterpart in vit::ViT
// and is left out.
Comparison run_vit(const json& c, double tol) {
  skip_library_bug(c);
  vit::ViT model(vit_config(c.at("config")), 0);
  std::map<std::string, Tensor> own;
  for (const auto& [name, p] : model.named_parameters()) own.emplace(name, p);
  json params = json::object();
  nn::NamedTensors destinations;
  for (auto& [name, t] : c.at("params").items()) {
    if (tensor_of(t).numel() == 0) continue;
    auto it = own.find(vit_name(name));
    HC_CHECK(it != own.end(), Error, "refcheck: vit: the reference's '", name, "' (here '", vit_name(name),
             "') is no parameter of vit::ViT, or a second name for one");
    params[name] = t;
    destinations.emplace_back(name, it->second);
    own.erase(it);  // each of the model's parameters is set once
  }
  HC_CHECK(own.empty(), Error, "refcheck: vit: the case does not set vit::ViT's '", own.begin()->first, "'");
  load_params(params, destinations);

  autograd::NoGradGuard no_grad;
  Comparison result;
  compare(result, "logits", model.forward(tensor_of(c.at("inputs").at("img"))), c.at("outputs").at("logits"), tol);
  return result;
}

}  // namespace

void add_vit_runners(RunnerTable& table) { table["vit"] = run_vit; }

}  // namespace refcheck
