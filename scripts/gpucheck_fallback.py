#!/usr/bin/env python3
"""Which of our CUDA kernels the benches must leave off, read from `mst gpucheck`'s output.

Usage: gpucheck_fallback.py GPUCHECK_JSONL [GPUCHECK_EXIT_STATUS]

Prints the `--set` options (one line, possibly empty) that switch off every kernel family whose
own check failed, or whose check never ran or ran after a CUDA fault (a fault is sticky: every
later check in that process fails with it, so those failures blame nothing). Writes the reasons,
one per line, to standard error. gpu_check.sh passes the options to every bench, so that one
device call still measures the rest of the step with correct arithmetic.
"""
import json
import sys

# Each switch and the checks that test its kernels alone (the combined end-to-end checks, such as
# cpu_vs_cuda_bf16_fused, run several families at once and blame none of them).
FAMILIES = {
    "train.fused_norm": ["fused_norm_vs_reference", "qkv_heads_kernel_vs_reference",
                         "token_embed_vs_reference"],
    "train.fused_loss": ["fused_loss_vs_reference", "fused_reconstruction_vs_reference",
                         "cpu_vs_cuda_fp32_fused_loss"],
    "train.fused_augment": ["fused_augment_vs_aten", "cpu_vs_cuda_fp32_fused_augment"],
    "train.fused_decoder": ["decoder_norm_kernel_vs_reference", "cpu_vs_cuda_fp32_fused_decoder"],
    "train.fused_optimizer": ["fused_optimizer_vs_reference"],
}
COMBINED = ["cpu_vs_cuda_bf16_fused", "cpu_vs_cuda_bf16_stream_fused", "graph_vs_eager_bf16_fused"]
CUDA_FAULT = ("illegal memory access", "misaligned address", "unspecified launch failure",
              "illegal instruction", "device-side assert", "CUDA error")


def read_checks(path):
    checks = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict) and "check" in row:
                    checks.append(row)
    except OSError:
        pass
    return checks


def checks_named(verdict, part):
    return [n for n in verdict if part in n]


def main():
    path = sys.argv[1]
    exit_status = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    checks = read_checks(path)
    # Verdicts up to and including the first CUDA fault; the rest are unknown.
    verdict = {}
    fault = None
    for c in checks:
        name = c["check"]
        if fault is not None:
            break
        verdict[name] = bool(c.get("passed"))
        error = str(c.get("values", {}).get("error", "")) if isinstance(c.get("values"), dict) else ""
        if not verdict[name] and any(s in error for s in CUDA_FAULT):
            fault = name
    off, why = [], []
    for switch, names in FAMILIES.items():
        failed = [n for n in names if verdict.get(n) is False]
        unknown = [n for n in names if n not in verdict]
        if failed:
            off.append(switch)
            why.append(f"{switch}=off: failed {', '.join(failed)}")
        elif unknown:
            off.append(switch)
            cause = f"after the CUDA fault in {fault}" if fault else (
                f"gpucheck exited {exit_status}" if exit_status else "gpucheck stopped early")
            why.append(f"{switch}=off: not checked ({', '.join(unknown)}; {cause})")
    # train.fused_mlp is opt-in: only its own rows use it, so they are flagged, not changed.
    mlp = [n for n in checks_named(verdict, "fused_mlp") + checks_named(verdict, "gelu_backward")
           if verdict[n] is False]
    if mlp:
        why.append("warning: the train.fused_mlp rows measure kernels that failed " + ", ".join(mlp))
    combined = [n for n in COMBINED if verdict.get(n) is False]
    if combined and not off:
        why.append("warning: end-to-end checks failed (" + ", ".join(combined) + ") though each "
                   "kernel's own check passed; the benches keep the defaults")
    for line in why:
        print(line, file=sys.stderr)
    print(" ".join(f"--set {s}=off" for s in off))


if __name__ == "__main__":
    main()
