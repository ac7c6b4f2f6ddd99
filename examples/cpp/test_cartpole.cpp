// Drives rlexport::CartPole from stdin, for tests/examples/test_cpp_cartpole.py:
//   reset X X_DOT THETA THETA_DOT     (hexadecimal or decimal doubles)
//   step ACTION                       prints: x x_dot theta theta_dot (%a) obs0..3 (%a) reward terminated truncated
// Build: c++ -std=c++20 -O1 examples/cpp/test_cartpole.cpp -o test_cartpole
#include <cstdio>
#include <cstring>

#include "cartpole.hpp"

int main() {
  rlexport::CartPole env;
  char command[16];
  while (std::scanf("%15s", command) == 1) {
    if (std::strcmp(command, "reset") == 0) {
      std::array<double, 4> s{};
      if (std::scanf("%la %la %la %la", &s[0], &s[1], &s[2], &s[3]) != 4) return 2;
      env.reset(s);
    } else if (std::strcmp(command, "step") == 0) {
      int action = 0;
      if (std::scanf("%d", &action) != 1 || (action != 0 && action != 1)) return 2;
      const auto out = env.step(action);
      const auto& s = env.state;
      std::printf("%a %a %a %a %a %a %a %a %g %d %d\n", s[0], s[1], s[2], s[3],
                  out.observation[0], out.observation[1], out.observation[2], out.observation[3],
                  out.reward, out.terminated, out.truncated);
    } else {
      std::fprintf(stderr, "unknown command %s\n", command);
      return 2;
    }
  }
  return 0;
}
