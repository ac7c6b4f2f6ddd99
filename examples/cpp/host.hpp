// PPO / A2C training from an rlexport bundle (docs/bundle.md) in C++: the loop of
// `rlexport train --engine onnx` (rlexport/train/loop.py) around the bundle's AOTInductor
// packages of its three graphs (graphs.<role>.aoti: act, advantage, train_step), run with
// LibTorch's torch::inductor::AOTIModelPackageLoader. Same loop as the JS host (examples/js).
//
//   rlexport::Host host(bundle_dir, seed);
//   while (host.update < host.num_updates) { host.collect(); host.learn(); }
//
// Environments are rlexport::CartPole (cartpole.hpp); randomness (sampling noise, minibatch
// permutations, env resets) comes from `Sources`: by default the host's seeded generator; the
// parity test passes the ONNX engine's recorded noise, permutations and reset states instead.
#pragma once

#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "cartpole.hpp"
#include "golden.hpp"
#include "mini_json.hpp"

namespace rlexport {

namespace fs = std::filesystem;

// A JSON number of bundle.json / X.json: non-finite values are the strings "inf", "-inf", "nan".
inline double json_number(const mini_json::Value& v) {
  if (v.is_number()) return v.num();
  if (v.is_string()) {
    if (v.str() == "inf") return INFINITY;
    if (v.str() == "-inf") return -INFINITY;
    if (v.str() == "nan") return NAN;
  }
  throw std::runtime_error("bundle: expected a number, got something else");
}

// One AOTInductor package with its X.json: inputs by name (X.json "input_names" order), outputs
// named by X.json "outputs" (graph order).
struct Graph {
  std::string role;
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader;
  mini_json::Value meta;
  std::vector<std::string> input_names, output_names;
  std::map<std::string, std::string> params;  // graph input -> state name

  Graph(const fs::path& bundle, const std::string& role_, const mini_json::Value& entry) : role(role_) {
    if (!entry.contains("aoti"))
      throw std::runtime_error("bundle: graphs." + role + " has no \"aoti\" entry; make the bundle with `rlexport bundle ... --format aoti`");
    const auto& aoti = entry["aoti"];
    meta = mini_json::parse(golden::read_text(bundle / aoti["meta"].str()));
    for (const auto& n : meta["input_names"].array) input_names.push_back(n.str());
    for (const auto& [n, _] : meta["outputs"].object) output_names.push_back(n);
    loader = std::make_unique<torch::inductor::AOTIModelPackageLoader>((bundle / aoti["file"].str()).string());
    for (const auto& [in, state] : entry["params"].object) params[in] = state.str();
  }

  // `feeds` must hold every input; returns the outputs by name.
  std::map<std::string, at::Tensor> run(const std::map<std::string, at::Tensor>& feeds) {
    std::vector<at::Tensor> args;
    args.reserve(input_names.size());
    for (const auto& n : input_names) {
      auto it = feeds.find(n);
      if (it == feeds.end()) throw std::runtime_error(role + " graph: no feed for input \"" + n + "\"");
      args.push_back(it->second);
    }
    auto outs = loader->run(args);
    if (outs.size() != output_names.size())
      throw std::runtime_error(role + " graph returned " + std::to_string(outs.size()) + " outputs, X.json lists " +
                               std::to_string(output_names.size()));
    std::map<std::string, at::Tensor> named;
    for (size_t i = 0; i < outs.size(); ++i) named[output_names[i]] = outs[i];
    return named;
  }
};

// The host's own random numbers: one 64-bit Mersenne Twister.
struct Rng {
  std::mt19937_64 gen;
  explicit Rng(uint64_t seed) : gen(seed) {}
  double uniform() { return static_cast<double>(gen() >> 11) * 0x1.0p-53; }     // [0, 1), 53 bits
  float uniform_float() { return static_cast<float>(gen() >> 40) * 0x1.0p-24f; }  // [0, 1), exact in float
  std::vector<int64_t> permutation(int64_t n) {  // Fisher-Yates
    std::vector<int64_t> p(n);
    for (int64_t i = 0; i < n; ++i) p[i] = i;
    for (int64_t i = n - 1; i > 0; --i) std::swap(p[i], p[static_cast<int64_t>(uniform() * (i + 1))]);
    return p;
  }
};

struct Sources {
  std::function<at::Tensor(int64_t)> noise;                      // [E] float32 uniform noise
  std::function<std::vector<int64_t>(int64_t)> permutation;      // of 0..N-1
  std::function<std::array<double, 4>(int64_t)> reset_state;     // env e's next initial state
};

class Host {
 public:
  fs::path dir;
  mini_json::Value spec;
  int64_t E, T, D, N, n_actions, epochs, minibatch_size, num_updates, update, global_step;
  std::vector<std::string> batch_names;
  std::map<std::string, at::Tensor> state;      // the training state, replaced after each train step
  std::map<std::string, at::Tensor> hyperparams;  // hp.* inputs of the train step
  std::vector<std::pair<std::string, std::string>> state_updates;  // state input -> train-step output
  std::unique_ptr<Graph> act_graph, advantage_graph, train_graph;
  std::vector<CartPole> envs;
  Sources sources;
  Rng rng;

  // rollout buffers [E, T, ...]
  at::Tensor observation, next_observation, action, sample_log_prob, next_reward, next_done, next_terminated;
  at::Tensor obs;  // current observations [E, D] float32
  std::vector<double> ep_return;
  std::deque<double> recent;  // the last 20 episodic returns
  std::vector<double> first;  // the first 20 episodic returns
  int64_t episodes = 0;
  std::map<std::string, double> last_losses;

  Host(const fs::path& bundle_dir, uint64_t seed, Sources custom = {}) : dir(fs::absolute(bundle_dir)), rng(seed) {
    spec = mini_json::parse(golden::read_text(dir / "bundle.json"));
    if (!spec.contains("format") || spec["format"].str() != "rlexport-bundle" || spec["version"].integer() != 1)
      throw std::runtime_error(dir.string() + "/bundle.json: not an rlexport-bundle version 1");
    const auto& env = spec["env"];
    if (env["id"].str() != "CartPole-v1")
      throw std::runtime_error("bundle: env " + env["id"].str() + "; this host has only CartPole-v1");
    if (env["action"]["type"].str() != "discrete") throw std::runtime_error("bundle: this host needs a discrete action space");
    if (!spec["normalization"]["observation"].is_null() || !spec["normalization"]["reward"].is_null())
      throw std::runtime_error("bundle: observation/reward normalisation is not implemented in this host; make the bundle without --normalize-*");
    E = spec["rollout"]["num_envs"].integer();
    T = spec["rollout"]["num_steps"].integer();
    N = E * T;
    D = env["observation"]["shape"][0].integer();
    n_actions = env["action"]["n"].integer();
    epochs = spec["update"]["epochs"].integer();
    minibatch_size = spec["update"]["minibatch_size"].integer();
    for (const auto& b : spec["update"]["batch"].array) batch_names.push_back(b.str());
    num_updates = spec["schedule"]["num_updates"].integer();
    update = spec["schedule"]["start_update"].integer();
    global_step = spec["schedule"]["start_step"].integer();

    const auto& graphs = spec["graphs"];
    act_graph = std::make_unique<Graph>(dir, "act", graphs["act"]);
    advantage_graph = std::make_unique<Graph>(dir, "advantage", graphs["advantage"]);
    train_graph = std::make_unique<Graph>(dir, "train_step", graphs["train_step"]);

    const auto st = golden::load(dir / spec["state"]["dir"].str());
    for (const auto& c : st.cases)
      if (c.name == spec["state"]["case"].str())
        for (const auto& [n, t] : c.inputs) state[n] = t;
    for (const auto& n : spec["state"]["names"].array)
      if (!state.count(n.str())) throw std::runtime_error("bundle: state tensor " + n.str() + " missing from " + st.dir.string());
    for (const auto& [in, out] : spec["state"]["train_step_updates"].object) state_updates.emplace_back(in, out.str());
    for (const auto& [name, value] : train_graph->meta["hyperparams"].object) set_hyperparam(name, json_number(value));

    sources = custom;
    if (!sources.noise)
      sources.noise = [this](int64_t n) {
        at::Tensor t = at::empty({n}, at::kFloat);
        for (int64_t i = 0; i < n; ++i) t.data_ptr<float>()[i] = rng.uniform_float();
        return t;
      };
    if (!sources.permutation) sources.permutation = [this](int64_t n) { return rng.permutation(n); };
    if (!sources.reset_state)  // Gymnasium's reset: each component uniform in [-0.05, 0.05)
      sources.reset_state = [this](int64_t) {
        std::array<double, 4> s;
        for (auto& x : s) x = -0.05 + 0.1 * rng.uniform();
        return s;
      };

    auto f = at::TensorOptions().dtype(at::kFloat);
    observation = at::zeros({E, T, D}, f);
    next_observation = at::zeros({E, T, D}, f);
    action = at::zeros({E, T}, at::kLong);
    sample_log_prob = at::zeros({E, T}, f);
    next_reward = at::zeros({E, T, 1}, f);
    next_done = at::zeros({E, T, 1}, at::kBool);
    next_terminated = at::zeros({E, T, 1}, at::kBool);
    envs.resize(E);
    obs = at::empty({E, D}, f);
    for (int64_t e = 0; e < E; ++e) {
      envs[e].reset(sources.reset_state(e));
      for (int64_t j = 0; j < D; ++j) obs[e][j] = static_cast<float>(envs[e].state[j]);
    }
    ep_return.assign(E, 0.0);
  }

  void set_hyperparam(const std::string& name, double value) {
    const auto& in = train_graph->meta["inputs"];
    if (!in.contains(name)) throw std::runtime_error("train step has no hyper-parameter " + name);
    const std::string dtype = in[name]["dtype"].str();
    hyperparams[name] = dtype == "bool" ? at::scalar_tensor(value != 0, at::kBool)
                                        : at::scalar_tensor(value, at::TensorOptions().dtype(golden::scalar_type(dtype)));
  }

  std::map<std::string, at::Tensor> param_feeds(const Graph& g) const {
    std::map<std::string, at::Tensor> feeds;
    for (const auto& [in, name] : g.params) feeds[in] = state.at(name);
    return feeds;
  }

  // One rollout of T steps in every env (same-step autoreset).
  void collect() {
    float* obs_buf = observation.data_ptr<float>();
    float* next_buf = next_observation.data_ptr<float>();
    int64_t* act_buf = action.data_ptr<int64_t>();
    float* logp_buf = sample_log_prob.data_ptr<float>();
    float* rew_buf = next_reward.data_ptr<float>();
    bool* done_buf = next_done.data_ptr<bool>();
    bool* term_buf = next_terminated.data_ptr<bool>();
    for (int64_t t = 0; t < T; ++t) {
      auto feeds = param_feeds(*act_graph);
      feeds["observation"] = obs;
      feeds["noise"] = sources.noise(E).contiguous();
      auto out = act_graph->run(feeds);
      at::Tensor a = out.at("action").contiguous(), lp = out.at("sample_log_prob").contiguous();
      at::Tensor next_obs = at::empty({E, D}, at::kFloat);
      for (int64_t e = 0; e < E; ++e) {
        const int64_t i = e * T + t;
        const int64_t act = a.data_ptr<int64_t>()[e];
        const auto r = envs[e].step(static_cast<int>(act));
        const bool done = r.terminated || r.truncated;
        std::copy_n(obs.data_ptr<float>() + e * D, D, obs_buf + i * D);
        std::copy_n(r.observation.data(), D, next_buf + i * D);
        act_buf[i] = act;
        logp_buf[i] = lp.data_ptr<float>()[e];
        rew_buf[i] = static_cast<float>(r.reward);
        done_buf[i] = done;
        term_buf[i] = r.terminated;
        if (done) {
          envs[e].reset(sources.reset_state(e));
          for (int64_t j = 0; j < D; ++j) next_obs.data_ptr<float>()[e * D + j] = static_cast<float>(envs[e].state[j]);
        } else {
          std::copy_n(r.observation.data(), D, next_obs.data_ptr<float>() + e * D);
        }
        ep_return[e] += r.reward;
        if (done) {
          episodes += 1;
          recent.push_back(ep_return[e]);
          if (recent.size() > 20) recent.pop_front();
          if (first.size() < 20) first.push_back(ep_return[e]);
          ep_return[e] = 0;
        }
      }
      obs = next_obs;
      global_step += E;
    }
  }

  // {advantage, value_target} [E, T, 1] from the advantage graph.
  std::pair<at::Tensor, at::Tensor> advantages() {
    auto feeds = param_feeds(*advantage_graph);
    feeds["observation"] = observation;
    feeds["next_observation"] = next_observation;
    feeds["next_reward"] = next_reward;
    feeds["next_done"] = next_done;
    feeds["next_terminated"] = next_terminated;
    auto out = advantage_graph->run(feeds);
    return {out.at("advantage").contiguous(), out.at("value_target").contiguous()};
  }

  double learning_rate() const {
    const auto& lr = spec["schedule"]["lr"];
    const double initial = json_number(lr["initial"]);
    if (lr["kind"].str() == "constant") return initial;
    return std::max(1.0 - static_cast<double>(update) / static_cast<double>(num_updates), 0.0) * initial;
  }

  // One train-step call: state + hp.* + batch; the new state replaces the old.
  std::map<std::string, at::Tensor> train_step(const std::map<std::string, at::Tensor>& batch) {
    std::map<std::string, at::Tensor> feeds = state;
    for (const auto& [k, v] : hyperparams) feeds[k] = v;
    for (const auto& [k, v] : batch) feeds[k] = v;
    auto out = train_graph->run(feeds);
    for (const auto& [in, o] : state_updates) state[in] = out.at(o);
    return out;
  }

  // Advantages, then epochs x shuffled minibatches of train steps; the mean losses in last_losses.
  void learn() {
    auto [adv, vt] = advantages();
    std::map<std::string, at::Tensor> columns = {
        {"observation", observation.reshape({N, D})},
        {"action", action.reshape({N})},
        {"sample_log_prob", sample_log_prob.reshape({N})},
        {"advantage", adv.reshape({N, 1})},
        {"value_target", vt.reshape({N, 1})},
        {"state_value", (vt - adv).reshape({N, 1})},
    };
    const auto& ins = train_graph->meta["inputs"];
    for (const auto& b : batch_names) {
      if (!columns.count(b)) throw std::runtime_error("train step batch input " + b + " is not a rollout column");
      // the column's rank as the train step takes it ([batch] or [batch, k])
      const size_t rank = ins[b]["shape"].array.size();
      if (rank == 1) columns[b] = columns[b].reshape({N});
    }
    set_hyperparam("hp.lr", learning_rate());
    std::map<std::string, double> sums;
    int64_t count = 0;
    for (int64_t epoch = 0; epoch < epochs; ++epoch) {
      const auto perm = sources.permutation(N);
      for (int64_t start = 0; start < N; start += minibatch_size) {
        const int64_t len = std::min(minibatch_size, N - start);
        if (len < minibatch_size && start > 0) continue;  // one graph shape: fold a remainder away
        at::Tensor idx = at::from_blob(const_cast<int64_t*>(perm.data()) + start, {len}, at::kLong);
        std::map<std::string, at::Tensor> batch;
        for (const auto& b : batch_names) batch[b] = columns[b].index_select(0, idx);
        auto out = train_step(batch);
        for (const auto& [k, v] : out)
          if (k.rfind("loss_", 0) == 0 || k == "grad_norm") sums[k] += v.item<double>();
        count += 1;
      }
    }
    update += 1;
    last_losses.clear();
    for (const auto& [k, v] : sums) last_losses[k] = v / std::max<int64_t>(count, 1);
  }

  double mean_return() const { return mean(recent); }
  double first_mean_return() const { return mean(first); }

  template <class C>
  static double mean(const C& values) {
    if (values.empty()) return NAN;
    double s = 0;
    for (double r : values) s += r;
    return s / static_cast<double>(values.size());
  }
};

}  // namespace rlexport
