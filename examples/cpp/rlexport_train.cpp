// rlexport_train: train PPO / A2C on CartPole-v1 in C++ from an rlexport training bundle made
// with `rlexport bundle ... --format aoti` (docs/bundle.md; the loop is host.hpp's).
//
//   rlexport_train BUNDLE [--seed S] [--steps N] [--every K] [--min-return R]
//       trains for the bundle's schedule (or N env steps), printing a progress line every K
//       updates and, last, "cpp: mean return R (last 20 episodes) after N steps, S steps/s";
//       with --min-return, exit status 1 unless the last 20 episodes' mean return is at least R
//       and at least 4 times the first 20 episodes' (a random CartPole policy lasts ~22 steps)
//   rlexport_train BUNDLE --parity ENGINE_TRACE
//       replays rlexport's ONNX engine (examples/js/make_parity.py's engine/ folder): its env
//       resets, noise and permutations; checks the rollout (actions exactly), the advantages and
//       the whole training state after each iteration to the trace's rtol/atol
//
// Exit status: 0 ok, 1 a parity mismatch, 2 an error (bad bundle, bad arguments).

#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include "host.hpp"

namespace fs = std::filesystem;

static int usage() {
  std::cerr << "usage: rlexport_train BUNDLE [--seed S] [--steps N] [--every K] [--min-return R] | BUNDLE --parity ENGINE_TRACE\n";
  return 2;
}

static const at::Tensor& need(const golden::NamedTensors& m, const std::string& name, const std::string& where) {
  const at::Tensor* t = golden::find(m, name);
  if (!t) throw std::runtime_error(where + ": no tensor " + name);
  return *t;
}

// The ONNX engine's first iterations, replayed: returns the number of mismatches.
static int parity(const fs::path& bundle, const fs::path& trace_dir) {
  const auto trace = golden::load(trace_dir);
  if (trace.kind != "engine_trace") throw std::runtime_error(trace_dir.string() + ": not an engine_trace sample");
  const golden::Case* resets = nullptr;
  std::vector<const golden::Case*> iterations;
  for (const auto& c : trace.cases) {
    if (c.name == "resets") resets = &c;
    else if (c.name.rfind("iteration", 0) == 0) iterations.push_back(&c);
  }
  if (!resets || iterations.empty()) throw std::runtime_error(trace_dir.string() + ": needs a \"resets\" case and iterations");

  std::vector<int64_t> next_reset;
  const golden::Case* current = nullptr;
  int64_t noise_row = 0, perm_row = 0;
  rlexport::Sources sources;
  sources.reset_state = [&](int64_t e) {
    const at::Tensor& r = need(resets->inputs, "resets." + std::to_string(e), "resets");
    if (next_reset.size() <= static_cast<size_t>(e)) next_reset.resize(e + 1, 0);
    const int64_t k = next_reset[e]++;
    if (k >= r.size(0)) throw std::runtime_error("env " + std::to_string(e) + ": more resets than the engine made");
    std::array<double, 4> s;
    for (int j = 0; j < 4; ++j) s[j] = r[k][j].item<double>();
    return s;
  };
  sources.noise = [&](int64_t n) {
    const at::Tensor& noise = need(current->inputs, "noise", current->name);
    at::Tensor row = noise[noise_row++].contiguous();
    if (row.numel() != n) throw std::runtime_error("recorded noise row has " + std::to_string(row.numel()) + " values, the host needs " + std::to_string(n));
    return row;
  };
  sources.permutation = [&](int64_t n) {
    at::Tensor p = need(current->inputs, "permutations", current->name)[perm_row++].to(at::kLong).contiguous();
    if (p.numel() != n) throw std::runtime_error("recorded permutation has " + std::to_string(p.numel()) + " entries, the host needs " + std::to_string(n));
    return std::vector<int64_t>(p.data_ptr<int64_t>(), p.data_ptr<int64_t>() + n);
  };

  rlexport::Host host(bundle, 0, sources);
  int bad = 0;
  auto check = [&](const std::string& label, const at::Tensor& actual, const at::Tensor& expected, double rtol, double atol) {
    at::Tensor a = actual.numel() == expected.numel() ? actual.reshape(expected.sizes()) : actual;
    const std::string m = golden::mismatch(label, a, expected, rtol, atol);
    if (!m.empty()) {
      std::cout << "MISMATCH " << m << "\n";
      ++bad;
    }
  };
  // the bundle must start where the engine started (same config and seed)
  for (const auto& [name, t] : trace.initial_state) {
    if (!host.state.count(name)) throw std::runtime_error("the bundle has no state " + name + " (engine trace of another config?)");
    check("initial " + name, host.state.at(name), t, 0, 0);
  }
  if (bad) return bad;
  for (const auto* it : iterations) {
    current = it;
    noise_row = perm_row = 0;
    const auto before = host.state;
    host.collect();
    const std::map<std::string, at::Tensor> rollout = {
        {"observation", host.observation}, {"next_observation", host.next_observation}, {"action", host.action},
        {"sample_log_prob", host.sample_log_prob}, {"next_reward", host.next_reward}, {"next_done", host.next_done},
        {"next_terminated", host.next_terminated}};
    for (const auto& [k, v] : rollout) check(it->name + " rollout." + k, v, need(it->outputs, "rollout." + k, it->name), trace.rtol, trace.atol);
    auto [adv, vt] = host.advantages();
    check(it->name + " advantage", adv, need(it->outputs, "advantage", it->name), trace.rtol, trace.atol);
    check(it->name + " value_target", vt, need(it->outputs, "value_target", it->name), trace.rtol, trace.atol);
    host.learn();
    double worst = 0, moved = 0;
    int compared = 0;
    for (const auto& [key, expected] : it->outputs) {
      if (key.rfind("state.", 0) != 0) continue;
      const std::string name = key.substr(6);
      if (!host.state.count(name)) {
        std::cout << "MISMATCH " << it->name << ": the host has no state " << name << "\n";
        ++bad;
        continue;
      }
      check(it->name + " " + name, host.state.at(name), expected, trace.rtol, trace.atol);
      ++compared;
      if (name.rfind("param.", 0) == 0) {
        worst = std::max(worst, golden::max_abs_err(host.state.at(name), expected));
        moved = std::max(moved, golden::max_abs_err(host.state.at(name), before.at(name)));
      }
    }
    if (compared == 0 || moved <= 1e-6) {  // the comparison must be of parameters that moved
      std::cout << "MISMATCH " << it->name << ": " << compared << " state tensors compared, parameters moved by " << moved << "\n";
      ++bad;
    }
    std::printf("%s: rollout, advantages and %d state tensors match the ONNX engine; max |param - engine| = %.2e (moved %.2e)\n",
                it->name.c_str(), compared, worst, moved);
  }
  return bad;
}

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  const fs::path bundle = argv[1];
  uint64_t seed = 0;
  int64_t steps = -1, every = 10;
  double min_return = NAN;
  std::string parity_dir;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return usage();
    const std::string v = argv[++i];
    try {
      if (a == "--seed") seed = std::stoull(v);
      else if (a == "--steps") steps = std::stoll(v);
      else if (a == "--every") every = std::max<int64_t>(1, std::stoll(v));
      else if (a == "--parity") parity_dir = v;
      else if (a == "--min-return") min_return = std::stod(v);
      else return usage();
    } catch (const std::exception&) {
      std::cerr << "error: " << a << " takes a number, got '" << v << "'\n";
      return 2;
    }
  }
  at::set_num_threads(1);
  try {
    if (!parity_dir.empty()) {
      const int bad = parity(bundle, parity_dir);
      if (bad) std::cout << "parity: " << bad << " mismatches\n";
      else std::cout << "parity: the C++ host matches rlexport's ONNX engine\n";
      return bad ? 1 : 0;
    }
    rlexport::Host host(bundle, seed);
    const int64_t updates = steps > 0 ? std::max<int64_t>(1, steps / host.N) : host.num_updates;
    const int64_t start = host.global_step;
    const auto t0 = std::chrono::steady_clock::now();
    auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    while (host.update < updates) {
      host.collect();
      host.learn();
      if (host.update % every == 0 || host.update == updates) {
        std::printf("update %lld/%lld step %lld mean return %.1f episodes %lld loss_objective %.4f %.0f steps/s\n",
                    static_cast<long long>(host.update), static_cast<long long>(updates), static_cast<long long>(host.global_step),
                    host.mean_return(), static_cast<long long>(host.episodes), host.last_losses["loss_objective"],
                    (host.global_step - start) / std::max(seconds(), 1e-9));
        std::fflush(stdout);
      }
    }
    const double sps = (host.global_step - start) / std::max(seconds(), 1e-9);
    bool learned = true;
    if (!std::isnan(min_return)) {
      learned = host.mean_return() >= min_return && host.mean_return() >= 4 * host.first_mean_return();
      std::printf("first 20 episodes %.1f, last 20 %.1f: %s (needs >= %.1f and >= 4x the first)\n", host.first_mean_return(),
                  host.mean_return(), learned ? "learned" : "DID NOT LEARN", min_return);
    }
    std::printf("cpp: mean return %.1f (last 20 episodes) after %lld steps, %.0f steps/s\n", host.mean_return(),
                static_cast<long long>(host.global_step), sps);
    return learned ? 0 : 1;
  } catch (const std::exception& err) {
    std::cerr << "error: " << err.what() << "\n";
    return 2;
  }
}
