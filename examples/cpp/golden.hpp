// Reader and checker for rlexport golden samples (docs/design.md, "Golden sample format"):
//
//   X.golden/index.json
//   X.golden/<case>/<tensor name>.bin     raw little-endian, C order, no header
//
// Tensors become at::Tensor (CPU). Floats compare as numpy.allclose against the golden output
// (|a - e| <= atol + rtol * |e|, NaN equals NaN); integers and booleans compare exactly.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "mini_json.hpp"

namespace golden {

namespace fs = std::filesystem;

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;  // in index.json order

struct Tolerance {
  double rtol = 0, atol = 0;
};

struct Case {
  std::string name;
  NamedTensors inputs;
  NamedTensors outputs;
  // Optional per-output tolerances ("tolerance": {"rtol", "atol"} of an output entry): they
  // replace the sample's rtol/atol for that output (Sample::tolerance).
  std::vector<std::pair<std::string, Tolerance>> tolerances;
};

struct Sample {
  fs::path dir;
  fs::path artifact;  // beside the golden directory
  std::string kind;   // "forward" or "train_step"
  double rtol = 0, atol = 0;
  std::vector<Case> cases;
  std::vector<std::pair<std::string, std::string>> state;  // input name -> output name
  NamedTensors initial_state;
  mini_json::Value index;

  // rtol/atol for `output` of case `c`: its own entry when index.json has one, else the sample's.
  Tolerance tolerance(const Case& c, const std::string& output) const {
    for (const auto& [n, t] : c.tolerances)
      if (n == output) return t;
    return {rtol, atol};
  }
};

inline std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + p.string());
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline at::ScalarType scalar_type(const std::string& dtype) {
  if (dtype == "float32") return at::kFloat;
  if (dtype == "float64") return at::kDouble;
  if (dtype == "float16") return at::kHalf;
  if (dtype == "int64") return at::kLong;
  if (dtype == "int32") return at::kInt;
  if (dtype == "bool") return at::kBool;  // one byte per element, 0 or 1
  throw std::runtime_error("unsupported golden dtype \"" + dtype + "\"");
}

inline std::string dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kHalf: return "float16";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kBool: return "bool";
    default: return std::string(c10::toString(t));
  }
}

inline at::Tensor read_tensor(const fs::path& dir, const mini_json::Value& entry, const std::string& what) {
  const auto type = scalar_type(entry["dtype"].str());
  std::vector<int64_t> shape;
  for (const auto& d : entry["shape"].array) shape.push_back(d.integer());
  const fs::path file = dir / entry["file"].str();
  const std::string bytes = read_text(file);
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(type));
  const size_t need = static_cast<size_t>(t.numel()) * t.element_size();
  if (bytes.size() != need) {
    throw std::runtime_error(what + ": " + file.string() + " has " + std::to_string(bytes.size()) +
                             " bytes, its shape and dtype need " + std::to_string(need));
  }
  std::memcpy(t.data_ptr(), bytes.data(), need);
  if constexpr (std::endian::native == std::endian::big) {
    auto* p = static_cast<unsigned char*>(t.data_ptr());
    const size_t w = t.element_size();
    for (size_t i = 0; i + w <= need; i += w) std::reverse(p + i, p + i + w);
  }
  return t;
}

inline NamedTensors read_map(const fs::path& dir, const mini_json::Value& entries, const std::string& what) {
  NamedTensors out;
  for (const auto& [name, entry] : entries.object) out.emplace_back(name, read_tensor(dir, entry, what + " " + name));
  return out;
}

inline Sample load(const fs::path& golden_dir) {
  Sample s;
  s.dir = fs::absolute(golden_dir);
  s.index = mini_json::parse(read_text(s.dir / "index.json"));
  const auto& ix = s.index;
  if (!ix.contains("format") || ix["format"].str() != "rlexport-golden")
    throw std::runtime_error(s.dir.string() + "/index.json: format is not \"rlexport-golden\"");
  if (ix["version"].integer() != 1)
    throw std::runtime_error(s.dir.string() + "/index.json: unsupported version " + std::to_string(ix["version"].integer()));
  s.artifact = s.dir.parent_path() / ix["artifact"].str();
  s.kind = ix["kind"].str();
  s.rtol = ix["rtol"].num();
  s.atol = ix["atol"].num();
  for (const auto& c : ix["cases"].array) {
    const std::string name = c["name"].str();
    s.cases.push_back({name, read_map(s.dir, c["inputs"], name + " input"), read_map(s.dir, c["outputs"], name + " output"), {}});
    for (const auto& [out, entry] : c["outputs"].object) {
      if (entry.contains("tolerance"))
        s.cases.back().tolerances.emplace_back(out, Tolerance{entry["tolerance"]["rtol"].num(), entry["tolerance"]["atol"].num()});
    }
  }
  if (ix.contains("state")) {
    for (const auto& [in, out] : ix["state"].object) s.state.emplace_back(in, out.str());
  }
  if (ix.contains("initial_state")) s.initial_state = read_map(s.dir, ix["initial_state"], "initial_state");
  if (s.kind == "train_step" && (s.state.empty() || s.initial_state.empty()))
    throw std::runtime_error(s.dir.string() + ": a train_step sample needs \"state\" and \"initial_state\"");
  return s;
}

inline const at::Tensor* find(const NamedTensors& m, const std::string& name) {
  for (const auto& [n, t] : m)
    if (n == name) return &t;
  return nullptr;
}

// Empty string when `actual` matches `expected`; otherwise what differs.
inline std::string mismatch(const std::string& label, const at::Tensor& actual_in, const at::Tensor& expected,
                            double rtol, double atol) {
  std::ostringstream msg;
  at::Tensor actual = actual_in.detach().to(at::kCPU).contiguous();
  if (actual.sizes() != expected.sizes()) {
    msg << label << ": shape " << actual.sizes() << " != golden " << expected.sizes();
    return msg.str();
  }
  if (actual.scalar_type() != expected.scalar_type()) {
    msg << label << ": dtype " << dtype_name(actual.scalar_type()) << " != golden " << dtype_name(expected.scalar_type());
    return msg.str();
  }
  const int64_t n = expected.numel();
  if (n == 0) return "";
  if (!at::isFloatingType(expected.scalar_type())) {
    at::Tensor ne = actual.ne(expected).reshape(-1);
    const int64_t bad = ne.sum().item<int64_t>();
    if (bad == 0) return "";
    const int64_t first = ne.nonzero()[0][0].item<int64_t>();
    msg << label << ": " << bad << "/" << n << " elements differ (exact compare); first at flat index " << first
        << ": got " << actual.reshape(-1)[first].item<double>() << ", golden " << expected.reshape(-1)[first].item<double>();
    return msg.str();
  }
  at::Tensor a = actual.to(at::kDouble).reshape(-1), e = expected.to(at::kDouble).reshape(-1);
  at::Tensor diff = (a - e).abs();
  at::Tensor ok = diff.le(atol + rtol * e.abs()).logical_or(a.isnan().logical_and(e.isnan()));
  const int64_t bad = n - ok.sum().item<int64_t>();
  if (bad == 0) return "";
  const int64_t first = ok.logical_not().nonzero()[0][0].item<int64_t>();
  msg.precision(9);
  msg << label << ": " << bad << "/" << n << " elements differ beyond rtol=" << rtol << " atol=" << atol
      << "; first at flat index " << first << ": got " << a[first].item<double>() << ", golden "
      << e[first].item<double>() << "; max abs err " << diff.nan_to_num(INFINITY).max().item<double>();
  return msg.str();
}

// Largest |actual - expected| of a float tensor (for the log).
inline double max_abs_err(const at::Tensor& actual, const at::Tensor& expected) {
  if (!at::isFloatingType(expected.scalar_type()) || expected.numel() == 0) return 0;
  return (actual.to(at::kDouble) - expected.to(at::kDouble)).abs().max().item<double>();
}

}  // namespace golden
