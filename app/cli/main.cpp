/// @brief `mst`: the headless command line over the same engine as the workbench.
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "app/cli/common.h"
#include "core/util/error.h"

namespace {

/// The names of `app`'s sub-commands, "train, eval, ...".
std::string commandList(CLI::App* app) {
  std::string list;
  for (const auto* sub : app->get_subcommands([](CLI::App*) { return true; }))
    list += (list.empty() ? "" : ", ") + sub->get_name();
  return list;
}

/// One line for a command-line error CLI11 found (its own text is two lines, without the
/// command): the command the parse reached ("mst eval knn"), then what is wrong with which flag.
std::string parseErrorText(CLI::App& app, const CLI::ParseError& e) {
  CLI::App* at = &app;
  std::string path = "mst";
  while (!at->get_subcommands().empty()) {  // the sub-commands parsed so far
    at = at->get_subcommands().front();
    path += " " + at->get_name();
  }
  const std::vector<std::string> left = app.remaining(/*recurse=*/true);  // as typed
  std::string left_text;
  for (const auto& a : left) left_text += (left_text.empty() ? "" : " ") + a;
  if (dynamic_cast<const CLI::RequiredError*>(&e) && at->get_require_subcommand_min() > 0 &&
      at->get_subcommands().empty()) {
    for (const auto& a : left)
      if (!a.empty() && a[0] != '-')
        return path + ": unknown command '" + a + "' (commands: " + commandList(at) + ")";
    return path + ": no command given (commands: " + commandList(at) + ")";
  }
  if (dynamic_cast<const CLI::ExtrasError*>(&e))
    return path + ": unexpected argument" + (left.size() > 1 ? "s" : "") + " '" + left_text +
           "' (" + path + " --help lists the options)";
  return path + ": " + e.what();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace mst::cli;
  CLI::App app{"MST Workbench command line: train, evaluate, sweep, inspect, benchmark and export MST"};
  app.require_subcommand(1);
  app.option_defaults()->always_capture_default();  // --help shows each option's default
  std::vector<Command> commands{registerTrain(app),   registerEval(app),  registerSweep(app),
                                registerInspect(app), registerBench(app), registerDoctor(app),
                                registerConfig(app), registerLog(app),   registerGpuCheck(app),
                                registerExport(app)};
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "mst: error: " << parseErrorText(app, e) << std::endl;
    return e.get_exit_code() != 0 ? e.get_exit_code() : 2;
  }
  // On a terminal a progress bar may be mid-line: the error starts on a line of its own there.
  // Elsewhere the error is the one line stderr ends with.
  const char* lead = isatty(STDERR_FILENO) != 0 ? "\nmst: error: " : "mst: error: ";
  try {
    for (auto& command : commands)
      if (command.app->parsed()) command.run();
    return 0;
  } catch (const mst::FollowerError& e) {
    // A rank started by `mst train --ranks`: its parent, rank 0, prints the cause.
    if (std::getenv("MST_LOCAL_RANK_CHILD") == nullptr) std::cerr << lead << e.what() << std::endl;
  } catch (const mst::MstError& e) {
    std::cerr << lead << e.what() << std::endl;
  } catch (const c10::Error& e) {
    std::cerr << lead << e.what_without_backtrace() << std::endl;
  } catch (const std::exception& e) {
    std::cerr << lead << e.what() << std::endl;
  }
  return 1;
}
