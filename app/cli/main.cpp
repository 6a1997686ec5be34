/// @brief `mst`: the headless command line over the same engine as the workbench.
#include <iostream>

#include "app/cli/common.h"
#include "core/util/error.h"

int main(int argc, char** argv) {
  using namespace mst::cli;
  CLI::App app{"MST Workbench command line: train, evaluate, sweep, inspect, benchmark and export MST"};
  app.require_subcommand(1);
  std::vector<Command> commands{registerTrain(app),   registerEval(app),  registerSweep(app),
                                registerInspect(app), registerBench(app), registerDoctor(app),
                                registerConfig(app), registerLog(app),   registerGpuCheck(app),
                                registerExport(app)};
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& command : commands)
      if (command.app->parsed()) command.run();
    return 0;
  } catch (const mst::MstError& e) {
    std::cerr << "\nmst: error: " << e.what() << std::endl;
  } catch (const c10::Error& e) {
    std::cerr << "\nmst: error: " << e.what_without_backtrace() << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "\nmst: error: " << e.what() << std::endl;
  }
  return 1;
}
