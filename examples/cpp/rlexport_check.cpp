// rlexport_check: run rlexport artifacts from C++ (LibTorch) and check them against their golden
// samples.
//
//   rlexport_check [aoti:|torchscript:]X.golden [...]
//
// Loads the artifact named by X.golden/index.json — an AOTInductor package
// (torch::inductor::AOTIModelPackageLoader) or a TorchScript file (torch::jit::load) — runs
// every case (a "train_step" sample: the K steps in order, state outputs fed back) and compares
// every output with rtol/atol from index.json (an output's own "tolerance" entry first). Exit
// status 0 when everything matches, 1 on any mismatch, 2 on an error.
//
// Inputs are passed positionally. Their order comes from, first to last: X.json's "input_names"
// (written beside every rlexport artifact), the AOTInductor call spec's keyword names, the
// TorchScript forward() argument names, the order of index.json. Outputs are matched by X.json's
// "out_keys", a returned dict's keys, or the order of index.json.

#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <ATen/Parallel.h>
#include <torch/script.h>

#include <chrono>
#include <iostream>
#include <map>
#include <memory>
#include <set>

#include "golden.hpp"

namespace fs = std::filesystem;
using golden::NamedTensors;

struct Runner {
  std::string format;
  std::vector<std::string> input_names;   // positional order
  std::vector<std::string> output_names;  // positional order (may be empty: use the golden's)
  virtual ~Runner() = default;
  // Returns named outputs.
  virtual NamedTensors run(const std::vector<at::Tensor>& inputs) = 0;
};

static NamedTensors name_outputs(const std::vector<at::Tensor>& outs, const std::vector<std::string>& names) {
  if (outs.size() != names.size()) {
    throw std::runtime_error("the artifact returned " + std::to_string(outs.size()) + " outputs, expected " +
                             std::to_string(names.size()));
  }
  NamedTensors named;
  for (size_t i = 0; i < outs.size(); ++i) named.emplace_back(names[i], outs[i]);
  return named;
}

// Keyword names of the leaves of a torch.utils._pytree spec ("" where a leaf is positional).
static void spec_leaves(const mini_json::Value& node, const std::string& name, std::vector<std::string>& out) {
  const auto& children = node["children_spec"].array;
  if (node["type"].is_null() && children.empty()) {
    out.push_back(name);
    return;
  }
  std::vector<std::string> keys;
  if (node["type"].is_string() && node["type"].str() == "builtins.dict" && node["context"].is_string()) {
    for (const auto& k : mini_json::parse(node["context"].str()).array) keys.push_back(k.is_string() ? k.str() : "");
  }
  for (size_t i = 0; i < children.size(); ++i) spec_leaves(children[i], i < keys.size() ? keys[i] : "", out);
}

static std::vector<std::string> spec_names(const std::string& spec) {
  const auto v = mini_json::parse(spec);  // [version, tree]
  std::vector<std::string> names;
  spec_leaves(v[1], "", names);
  return names;
}

struct AotiRunner : Runner {
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader;
  size_t n_inputs = 0, n_outputs = 0;
  explicit AotiRunner(const fs::path& package) {
    format = "aoti";
    loader = std::make_unique<torch::inductor::AOTIModelPackageLoader>(package.string());
    const auto spec = loader->get_call_spec();
    if (spec.size() == 2) {
      const auto in = spec_names(spec[0]);
      const auto out = spec_names(spec[1]);
      n_inputs = in.size();
      n_outputs = out.size();
      if (std::none_of(in.begin(), in.end(), [](const std::string& s) { return s.empty(); })) input_names = in;
      if (std::none_of(out.begin(), out.end(), [](const std::string& s) { return s.empty(); })) output_names = out;
    }
  }
  NamedTensors run(const std::vector<at::Tensor>& inputs) override {
    return name_outputs(loader->run(inputs), output_names);
  }
};

struct TorchScriptRunner : Runner {
  torch::jit::Module module;
  explicit TorchScriptRunner(const fs::path& file) {
    format = "torchscript";
    module = torch::jit::load(file.string());
    module.eval();
    const auto& args = module.get_method("forward").function().getSchema().arguments();
    for (size_t i = 1; i < args.size(); ++i) input_names.push_back(args[i].name());  // [0] is self
  }
  NamedTensors run(const std::vector<at::Tensor>& inputs) override {
    std::vector<c10::IValue> stack(inputs.begin(), inputs.end());
    c10::IValue out = module.forward(stack);
    if (out.isGenericDict()) {
      NamedTensors named;
      for (const auto& kv : out.toGenericDict()) named.emplace_back(kv.key().toStringRef(), kv.value().toTensor());
      return named;
    }
    std::vector<at::Tensor> outs;
    if (out.isTensor()) {
      outs.push_back(out.toTensor());
    } else if (out.isTuple()) {
      for (const auto& e : out.toTupleRef().elements()) outs.push_back(e.toTensor());
    } else if (out.isList()) {
      for (const auto& e : out.toListRef()) outs.push_back(e.toTensor());
    } else {
      throw std::runtime_error("TorchScript forward returned " + out.tagKind());
    }
    return name_outputs(outs, output_names);
  }
};

static std::string sidecar_format(const mini_json::Value* meta, const fs::path& artifact) {
  if (meta && meta->contains("format") && (*meta)["format"].is_string()) {
    const std::string f = (*meta)["format"].str();
    if (f == "aoti" || f == "torchscript") return f;
  }
  const auto ext = artifact.extension().string();
  if (ext == ".pt2") return "aoti";
  if (ext == ".pt" || ext == ".ts" || ext == ".torchscript") return "torchscript";
  throw std::runtime_error(artifact.string() + ": cannot tell whether this is an AOTInductor package or TorchScript; "
                           "prefix the golden directory with aoti: or torchscript:");
}

static std::vector<std::string> string_list(const mini_json::Value& v) {
  std::vector<std::string> out;
  for (const auto& e : v.array) out.push_back(e.str());
  return out;
}

// Returns the number of mismatches.
static int check(const std::string& arg) {
  std::string forced, dir = arg;
  for (const std::string prefix : {"aoti:", "torchscript:"}) {
    if (arg.rfind(prefix, 0) == 0) {
      forced = prefix.substr(0, prefix.size() - 1);
      dir = arg.substr(prefix.size());
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  golden::Sample g = golden::load(dir);

  // X.json beside the artifact (rlexport writes it for every artifact).
  fs::path stem = g.artifact;
  stem.replace_extension();
  const fs::path meta_path = stem.parent_path() / (stem.filename().string() + ".json");
  std::unique_ptr<mini_json::Value> meta;
  if (fs::exists(meta_path)) meta = std::make_unique<mini_json::Value>(mini_json::parse(golden::read_text(meta_path)));

  const std::string format = forced.empty() ? sidecar_format(meta.get(), g.artifact) : forced;
  std::unique_ptr<Runner> runner;
  if (format == "aoti")
    runner = std::make_unique<AotiRunner>(g.artifact);
  else
    runner = std::make_unique<TorchScriptRunner>(g.artifact);
  const auto t1 = std::chrono::steady_clock::now();

  // Every name the graph takes: the per-case inputs plus, for a train step, the state.
  std::vector<std::string> golden_inputs;
  for (const auto& [n, _] : g.initial_state) golden_inputs.push_back(n);
  for (const auto& [n, _] : g.cases.at(0).inputs) golden_inputs.push_back(n);
  std::vector<std::string> golden_outputs;
  for (const auto& [n, _] : g.cases.at(0).outputs) golden_outputs.push_back(n);

  const bool meta_inputs = meta && meta->contains("input_names");
  std::vector<std::string> inputs = meta_inputs ? string_list((*meta)["input_names"]) : runner->input_names;
  if (inputs.empty()) inputs = golden_inputs;
  if (meta && meta->contains("out_keys")) runner->output_names = string_list((*meta)["out_keys"]);
  if (runner->output_names.empty()) runner->output_names = golden_outputs;
  if (auto* aoti = dynamic_cast<AotiRunner*>(runner.get()); aoti && aoti->n_inputs && aoti->n_inputs != inputs.size()) {
    throw std::runtime_error(g.artifact.string() + ": the package takes " + std::to_string(aoti->n_inputs) +
                             " inputs, the names say " + std::to_string(inputs.size()));
  }
  if (std::set<std::string>(inputs.begin(), inputs.end()) != std::set<std::string>(golden_inputs.begin(), golden_inputs.end())) {
    std::string a, b;
    for (const auto& s : inputs) a += s + " ";
    for (const auto& s : golden_inputs) b += s + " ";
    throw std::runtime_error(g.artifact.string() + ": graph inputs [ " + a + "] != golden inputs [ " + b + "]");
  }

  std::map<std::string, at::Tensor> state;
  for (const auto& [n, t] : g.initial_state) state[n] = t;

  int failures = 0;
  double worst = 0;
  for (const auto& c : g.cases) {
    std::vector<at::Tensor> args;
    for (const auto& name : inputs) {
      if (const at::Tensor* t = golden::find(c.inputs, name)) {
        args.push_back(*t);
      } else if (state.count(name)) {
        args.push_back(state[name]);
      } else {
        throw std::runtime_error(c.name + ": no golden input or state for graph input " + name);
      }
    }
    NamedTensors outs = runner->run(args);
    for (const auto& [name, expected] : c.outputs) {
      const at::Tensor* got = golden::find(outs, name);
      if (!got) {
        std::cerr << "  MISMATCH " << c.name << ": the graph gave no output " << name << "\n";
        ++failures;
        continue;
      }
      const golden::Tolerance tol = g.tolerance(c, name);  // per-output entry, else the sample's
      const std::string msg = golden::mismatch(c.name + ": " + name, *got, expected, tol.rtol, tol.atol);
      if (!msg.empty()) {
        std::cerr << "  MISMATCH " << msg << "\n";
        ++failures;
      }
      worst = std::max(worst, golden::max_abs_err(*got, expected));
    }
    if (outs.size() != c.outputs.size()) {
      std::cerr << "  MISMATCH " << c.name << ": the graph gave " << outs.size() << " outputs, the golden sample has "
                << c.outputs.size() << "\n";
      ++failures;
    }
    // Train step: feed the graph's own state outputs back (errors would compound, as in use).
    for (const auto& [in, out] : g.state) {
      const at::Tensor* t = golden::find(outs, out);
      if (!t) throw std::runtime_error(c.name + ": state output " + out + " missing");
      state[in] = *t;
    }
  }
  const auto t2 = std::chrono::steady_clock::now();
  auto ms = [](auto a, auto b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
  std::cout << (failures ? "FAIL " : "ok   ") << format << " " << g.artifact.filename().string() << ": " << g.kind
            << ", " << g.cases.size() << (g.kind == "train_step" ? " steps" : " cases") << ", rtol=" << g.rtol
            << " atol=" << g.atol << ", max abs err " << worst << " (load " << ms(t0, t1) << " ms, run "
            << ms(t1, t2) << " ms)\n";
  return failures;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: " << argv[0] << " [aoti:|torchscript:]X.golden [...]\n";
    return 2;
  }
  at::set_num_threads(1);
  int failures = 0;
  for (int i = 1; i < argc; ++i) {
    try {
      failures += check(argv[i]);
    } catch (const std::exception& e) {
      std::cerr << "ERROR " << argv[i] << ": " << e.what() << "\n";
      return 2;
    }
  }
  return failures ? 1 : 0;
}
