/// @brief The CPU emulator's scheduler (see emu.h): a block's threads as ucontext fibers, run in
/// rounds until each ends or waits, then released barrier by barrier.
#include "emu.h"

#include <ucontext.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

uint3 threadIdx{0, 0, 0}, blockIdx{0, 0, 0};
dim3 blockDim, gridDim;

namespace emu {
namespace {

constexpr int kWarp = 32;
constexpr size_t kStackBytes = 256 * 1024;
constexpr size_t kMaxShared = 48 * 1024;  // without cudaFuncAttributeMaxDynamicSharedMemorySize

enum class Wait { none, block, warp, ended };

}  // namespace

#if defined(__x86_64__)
// A fiber switch without system calls: swapcontext saves and restores the signal mask with two
// sigprocmask calls per switch, which made the emulated tests' time depend on the system's
// syscall cost (3.6 to 24 s for the same test). switchStack saves the callee-saved registers on
// the current stack, stores its stack pointer in *from, and resumes the stack `to` the same way.
extern "C" void mst_emu_switch_stack(void** from, void* to);
asm(R"(
  .text
  .globl mst_emu_switch_stack
  .type mst_emu_switch_stack, @function
mst_emu_switch_stack:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size mst_emu_switch_stack, .-mst_emu_switch_stack
)");
#define MST_EMU_STACK_SWITCH 1
#endif

namespace {

struct Fiber {
  ucontext_t context{};
  void* sp = nullptr;  // (MST_EMU_STACK_SWITCH) the suspended fiber's stack pointer
  std::unique_ptr<char[]> stack;
  uint3 index{};
  int linear = 0;
  Wait wait = Wait::none;
};

struct State {
  ucontext_t scheduler{};
  void* scheduler_sp = nullptr;
  std::vector<Fiber> fibers;
  std::vector<uint64_t> exchange;  // one slot per thread for shuffles
  std::vector<int> exchange_mask;  // and the lane mask each lane passed
  std::vector<unsigned char> dynamic_shared;
  const std::function<void()>* body = nullptr;
  Fiber* current = nullptr;
  int error = 0;
  std::exception_ptr fault;  // thrown inside a thread: rethrown by run()
};
State& state() {
  static State s;
  return s;
}

void entry() {
  State& s = state();
  try {
    (*s.body)();
  } catch (...) {  // (an exception cannot unwind across the fiber's stack)
    if (!s.fault) s.fault = std::current_exception();
  }
  s.current->wait = Wait::ended;
#ifdef MST_EMU_STACK_SWITCH
  mst_emu_switch_stack(&s.current->sp, s.scheduler_sp);  // never resumed
#else
  swapcontext(&s.current->context, &s.scheduler);  // never resumed
#endif
}

#ifdef MST_EMU_STACK_SWITCH
/// A new fiber's first stack: mst_emu_switch_stack pops six zero registers and "returns" into
/// entry, 16-byte aligned as after a call (entry never returns: its last switch is final).
void* freshStack(char* base, size_t bytes) {
  auto top = reinterpret_cast<uintptr_t>(base + bytes) & ~uintptr_t{15};
  auto* slot = reinterpret_cast<void**>(top - 16);
  slot[1] = nullptr;                                 // entry's own return address (unused)
  slot[0] = reinterpret_cast<void*>(&entry);         // where the first switch returns to
  void** sp = slot - 6;                              // r15, r14, r13, r12, rbx, rbp
  for (int i = 0; i < 6; ++i) sp[i] = nullptr;
  return sp;
}
#endif

void yield(Wait wait) {
  State& s = state();
  Fiber* me = s.current;
  if (me == nullptr) throw std::logic_error("emu: a barrier or shuffle outside a kernel");
  me->wait = wait;
#ifdef MST_EMU_STACK_SWITCH
  mst_emu_switch_stack(&me->sp, s.scheduler_sp);
#else
  swapcontext(&me->context, &s.scheduler);
#endif
  // Resumed: the scheduler has set threadIdx and current back to this thread.
}

std::string where(const Fiber& f) {
  return "block (" + std::to_string(blockIdx.x) + ", " + std::to_string(blockIdx.y) + ", " +
         std::to_string(blockIdx.z) + ") thread (" + std::to_string(f.index.x) + ", " +
         std::to_string(f.index.y) + ", " + std::to_string(f.index.z) + ")";
}

/// Releases what can go on after a round: each warp whose lanes all wait at a shuffle, else
/// every thread that waits at __syncthreads once no thread is left elsewhere. False: none.
bool release(State& s, int threads) {
  bool released = false;
  for (int w = 0; w * kWarp < threads; ++w) {
    const int first = w * kWarp, last = std::min(threads, first + kWarp);
    int at_shuffle = 0;
    for (int t = first; t < last; ++t) at_shuffle += s.fibers[t].wait == Wait::warp;
    if (at_shuffle == 0) continue;
    if (at_shuffle == last - first) {
      for (int t = first; t < last; ++t) s.fibers[t].wait = Wait::none;
      released = true;
      continue;
    }
    for (int t = first; t < last; ++t)
      if (s.fibers[t].wait == Wait::ended)
        throw std::runtime_error("emu: a full-warp shuffle after lane " + where(s.fibers[t]) +
                                 " has returned");
  }
  if (released) return true;
  int at_barrier = 0, ended = 0;
  for (int t = 0; t < threads; ++t) {
    at_barrier += s.fibers[t].wait == Wait::block;
    ended += s.fibers[t].wait == Wait::ended;
  }
  if (at_barrier > 0 && at_barrier + ended == threads) {
    for (int t = 0; t < threads; ++t)
      if (s.fibers[t].wait == Wait::block) s.fibers[t].wait = Wait::none;
    return true;
  }
  return false;
}

void runBlock(State& s, int threads, int round_base) {
  for (int t = 0; t < threads; ++t) {
    Fiber& f = s.fibers[t];
#ifdef MST_EMU_STACK_SWITCH
    f.sp = freshStack(f.stack.get(), kStackBytes);
#else
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = f.stack.get();
    f.context.uc_stack.ss_size = kStackBytes;
    f.context.uc_link = nullptr;
    makecontext(&f.context, entry, 0);
#endif
    f.wait = Wait::none;
  }
  for (int round = round_base;; ++round) {
    // Alternate the order in which ready threads run: results that depend on it differ.
    for (int i = 0; i < threads; ++i) {
      Fiber& f = s.fibers[round % 2 == 0 ? i : threads - 1 - i];
      if (f.wait != Wait::none) continue;
      s.current = &f;
      threadIdx = f.index;
#ifdef MST_EMU_STACK_SWITCH
      mst_emu_switch_stack(&s.scheduler_sp, f.sp);
#else
      swapcontext(&s.scheduler, &f.context);
#endif
    }
    s.current = nullptr;
    if (s.fault) {
      auto fault = s.fault;
      s.fault = nullptr;
      std::rethrow_exception(fault);
    }
    bool all_ended = true;
    for (int t = 0; t < threads; ++t) all_ended = all_ended && s.fibers[t].wait == Wait::ended;
    if (all_ended) return;
    if (!release(s, threads)) {
      for (int t = 0; t < threads; ++t)
        if (s.fibers[t].wait != Wait::ended)
          throw std::runtime_error("emu: deadlock, " + where(s.fibers[t]) + " waits at " +
                                   (s.fibers[t].wait == Wait::warp ? "a shuffle" : "__syncthreads") +
                                   " that not every thread reaches");
      throw std::runtime_error("emu: deadlock");
    }
  }
}

}  // namespace

uint64_t& launchCount() {
  static uint64_t count = 0;
  return count;
}

void run(dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& thread) {
  State& s = state();
  ++launchCount();
  const uint64_t threads = static_cast<uint64_t>(block.x) * block.y * block.z;
  if (threads == 0 || threads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 ||
      grid.z == 0 || grid.y > 65535 || grid.z > 65535 || shared_bytes > kMaxShared) {
    s.error = 9;  // cudaErrorInvalidConfiguration
    return;
  }
  if (s.fibers.size() < threads) s.fibers.resize(threads);
  for (uint64_t t = 0; t < threads; ++t) {
    Fiber& f = s.fibers[t];
    if (!f.stack) f.stack.reset(new char[kStackBytes]);
    f.linear = static_cast<int>(t);
    f.index = {static_cast<unsigned>(t % block.x), static_cast<unsigned>(t / block.x % block.y),
               static_cast<unsigned>(t / (static_cast<uint64_t>(block.x) * block.y))};
  }
  s.exchange.assign(threads, 0);
  s.exchange_mask.assign(threads, 0);
  s.body = &thread;
  blockDim = block;
  gridDim = grid;
  int64_t b = 0;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x, ++b) {
        blockIdx = {x, y, z};
        // Dynamic shared memory starts as NaN bytes each block: a read before a write shows.
        s.dynamic_shared.assign(shared_bytes, 0xff);
        runBlock(s, static_cast<int>(threads), static_cast<int>(b % 2));
      }
  s.body = nullptr;
}

void syncthreads() { yield(Wait::block); }

uint64_t exchangeXor(uint64_t bits, int lane_mask) {
  State& s = state();
  Fiber* me = s.current;
  if (me == nullptr) throw std::logic_error("emu: a shuffle outside a kernel");
  const int lane = me->linear % kWarp, base = me->linear - lane;
  const int from = base + ((lane ^ lane_mask) & (kWarp - 1));
  s.exchange[me->linear] = bits;
  s.exchange_mask[me->linear] = lane_mask;
  yield(Wait::warp);  // every lane has written its value
  // A partner beyond a partial warp gives all ones (NaN as a float): undefined on a GPU.
  const bool partner = from < static_cast<int>(s.exchange.size());
  if (partner && s.exchange_mask[from] != lane_mask)
    throw std::runtime_error("emu: the lanes of a warp met at shuffles with different lane masks");
  const uint64_t out = partner ? s.exchange[from] : ~uint64_t{0};
  yield(Wait::warp);  // every lane has read before any writes its next value
  return out;
}

void* dynamicShared() { return state().dynamic_shared.data(); }
int takeError() {
  const int e = state().error;
  state().error = 0;
  return e;
}
void setError(int error) { state().error = error; }
int multiprocessors() { return 3; }
int blocksPerMultiprocessor() { return 2; }

}  // namespace emu
