/// @brief Communicator on c10d (see communicator.h).
#include "core/dist/communicator.h"

#include <c10/util/Exception.h>

#include <cstdio>
#include <cstdlib>
// ProcessGroupGloo.hpp and ProcessGroupNCCL.hpp are empty unless USE_C10D_GLOO / USE_C10D_NCCL are
// defined. LibTorch's CMake targets export them (torch_cpu: USE_C10D_GLOO; torch_cuda:
// USE_C10D_NCCL); defining them here as well keeps a build that misses the target definitions
// from failing on an undeclared c10d::ProcessGroupGloo.
#ifndef MST_NO_GLOO
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#else
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>  // (2.x: and Backend.hpp)
#endif
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
// NCCL: ProcessGroupNCCL.hpp includes NCCLUtils.hpp, which includes <nccl.h>. LibTorch does not
// ship NCCL's header (pip wheels keep it in the nvidia-nccl package, CUDA toolkits often lack it),
// and CMake adds it only where core/CMakeLists.txt finds it. Without it the build still succeeds
// and a CUDA data-parallel run fails at start with a message saying why (no NCCL).
#if defined(MST_HAVE_CUDA) && defined(__has_include)
#if __has_include(<nccl.h>)
#define MST_HAVE_NCCL 1
#endif
#endif
#if defined(MST_HAVE_NCCL)
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "core/util/error.h"
#include "core/util/torch_compat.h"

namespace mst {
namespace {

/// "10", "2.5": a timeout as people write it.
std::string secondsText(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", seconds);
  return text;
}

/// The first line of an error: c10d's messages carry backtraces and multi-line context.
std::string firstLine(const std::exception& e) {
  std::string text;
  if (const auto* c10 = dynamic_cast<const c10::Error*>(&e))
    text = c10->what_without_backtrace();
  else
    text = e.what();
  const auto end = text.find('\n');
  return end == std::string::npos ? text : text.substr(0, end);
}

bool isLoopback(const std::string& addr) {
  return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1";
}

}  // namespace

struct Communicator::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<MST_C10D_BACKEND> group;
};

struct Communicator::Pending::Impl {
  c10::intrusive_ptr<c10d::Work> work;
};

Communicator::Pending::Pending() = default;
Communicator::Pending::~Pending() = default;
Communicator::Pending::Pending(Pending&&) noexcept = default;
Communicator::Pending& Communicator::Pending::operator=(Pending&&) noexcept = default;
bool Communicator::Pending::active() const { return impl_ && impl_->work; }

Communicator::Communicator(const DistContext& context, const torch::Device& device)
    : context_(context), device_(device), impl_(std::make_unique<Impl>()) {
  const double seconds = std::chrono::duration<double>(context.timeout).count();
  const std::string where = context.master_addr + ":" + std::to_string(context.master_port);
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(context.master_port);
    so.isServer = context.rank == 0;
    so.numWorkers = static_cast<std::size_t>(context.world_size);
    so.waitWorkers = false;  // the process group's own rendezvous waits for every rank
    so.timeout = context.timeout;
    try {
      impl_->store = c10::make_intrusive<c10d::TCPStore>(context.master_addr, so);
    } catch (const std::exception& e) {
      // LibTorch >= 2.4 asks for its libuv server by default and refuses where it was built
      // without libuv: then the socket-based server (1.13's only one, same protocol) does.
      if (std::string(e.what()).find("libuv") == std::string::npos ||
          !setTcpStoreUseLibuv(so, false, 0))
        throw;
      impl_->store = c10::make_intrusive<c10d::TCPStore>(context.master_addr, so);
    }
  } catch (const std::exception& e) {
    throw MstError("data-parallel rank " + std::to_string(context.rank) + ": no rendezvous at " +
                   where + " within " + secondsText(seconds) + " s: " + firstLine(e));
  }
  try {
    if (device.is_cuda()) {
#if defined(MST_HAVE_NCCL)
      // NCCL: a timed-out collective is torn down by c10d's watchdog (it aborts the process with
      // its own message); blocking waits would cost a host synchronisation per collective.
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = context.timeout;
      impl_->group = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl_->store, context.rank,
                                                                 context.world_size, options);
#elif defined(MST_HAVE_CUDA)
      throw MstError(
          "this build was compiled without nccl.h (NCCL's header): data-parallel "
          "training on CUDA is not available; rebuild with NCCL_INCLUDE_DIR (or "
          "NCCL_ROOT) naming the folder that holds nccl.h");
#else
      throw MstError("this build has no CUDA: NCCL is not available");
#endif
    } else {
#ifdef MST_NO_GLOO
      throw MstError("this build has no gloo headers: data-parallel training on the CPU is not "
                     "available (install libgloo-dev and rebuild)");
#else
      auto options = c10d::ProcessGroupGloo::Options::create(context.timeout);
      // As torch.distributed: GLOO_SOCKET_IFNAME picks the interface; a loopback master means a
      // one-machine run, which must not depend on the host name resolving.
      if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      else if (isLoopback(context.master_addr))
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      options->threads = 2;
      impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, context.rank,
                                                                 context.world_size, options);
#endif
    }
  } catch (const MstError&) {
    throw;
  } catch (const std::exception& e) {
    throw MstError("data-parallel rank " + std::to_string(context.rank) + " of " +
                   std::to_string(context.world_size) + ": the process group at " + where +
                   " did not form within " + secondsText(seconds) + " s: " + firstLine(e) +
                   (context.source.empty() ? std::string()
                                           : " (a data-parallel run because the environment has " +
                                                 context.source + ")"));
  }
}

Communicator::~Communicator() = default;

std::string Communicator::backendName() const { return impl_->group->getBackendName(); }

void Communicator::fail(const std::string& what, const std::exception& e) const {
  const double seconds = std::chrono::duration<double>(context_.timeout).count();
  char limit[32];
  std::snprintf(limit, sizeof limit, "%g", seconds);
  throw MstError("data-parallel rank " + std::to_string(context_.rank) + " of " +
                 std::to_string(context_.world_size) + ": " + what +
                 " failed: a peer died or did not answer within " + limit + " s (" + firstLine(e) +
                 ")");
}

void Communicator::broadcast(std::vector<torch::Tensor> tensors, int root) {
  for (auto& t : tensors) {
    TORCH_CHECK(t.is_contiguous(), "Communicator::broadcast: tensors must be contiguous");
    std::vector<torch::Tensor> one{t};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    try {
      impl_->group->broadcast(one, options)->wait();
    } catch (const std::exception& e) {
      fail("broadcast from rank " + std::to_string(root), e);
    }
  }
}

void Communicator::allReduceSum(torch::Tensor& tensor) {
  auto pending = allReduceSumAsync(tensor, "all-reduce");
  wait(pending);
}

Communicator::Pending Communicator::allReduceSumAsync(torch::Tensor tensor,
                                                      const std::string& what) {
  TORCH_CHECK(tensor.is_contiguous(), "Communicator::allReduceSum: tensor must be contiguous");
  Pending pending;
  pending.impl_ = std::make_unique<Pending::Impl>();
  pending.what_ = what;
  std::vector<torch::Tensor> one{std::move(tensor)};
  try {
    pending.impl_->work = impl_->group->allreduce(one);
  } catch (const std::exception& e) {
    fail(what, e);
  }
  return pending;
}

void Communicator::wait(Pending& pending) {
  if (!pending.active()) return;
  auto work = std::move(pending.impl_->work);
  try {
    work->wait();
  } catch (const std::exception& e) {
    fail(pending.what_, e);
  }
}

void Communicator::barrier() {
  try {
    impl_->group->barrier()->wait();
  } catch (const std::exception& e) {
    fail("barrier", e);
  }
}

}  // namespace mst
