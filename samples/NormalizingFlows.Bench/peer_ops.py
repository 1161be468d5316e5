# Counts the tensor operations of one training step of a peer library (zuko, normflows), as the "peers --ops"
# bench verb compares them with ours. It runs shared/bench/peers/peers_step.py (which builds the peer's flow
# like the library's preset and trains it) for a few iterations under a TorchFunctionMode that sees every torch
# function and Tensor method the step calls from Python, and splits them as the C# side is counted:
#   new      calls that return new tensors, counted per tensor returned (views included; getters excluded)
#   inplace  calls that modify a tensor in place (name ends in "_", result is the first argument)
#   nodes    autograd nodes the backward pass runs (the loss's graph, AccumulateGrad excluded)
# Usage: python3 peer_ops.py PEERS_STEP.py --lib zuko --flow realnvp --dim 2 --layers 8 [--target ring] ...
# Prints "OPS new=N inplace=N nodes=N" for the last of 4 iterations (the first builds lazy state).
import runpy, sys
import torch
from torch.overrides import TorchFunctionMode


def graph_nodes(loss):
    seen, stack = set(), [loss.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return sum(1 for node in seen if type(node).__name__ != "AccumulateGrad")


class CountingMode(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.new = self.inplace = 0
        self.nodes = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name == "backward" and args and isinstance(args[0], torch.Tensor) and args[0].grad_fn is not None:
            self.nodes += graph_nodes(args[0])
        result = func(*args, **kwargs)
        if name == "__get__":
            return result
        if name.endswith("_") and not name.endswith("__") and args and result is args[0]:
            self.inplace += 1
        elif isinstance(result, torch.Tensor):
            self.new += 1
        elif isinstance(result, (tuple, list)):
            self.new += sum(1 for r in result if isinstance(r, torch.Tensor))
        return result


script, rest = sys.argv[1], sys.argv[2:]
mode = CountingMode()
per_step = []
original_step = torch.optim.Adam.step


def counted_step(self, *a, **k):
    result = original_step(self, *a, **k)
    per_step.append((mode.new, mode.inplace, mode.nodes))
    mode.new = mode.inplace = mode.nodes = 0
    return result


torch.optim.Adam.step = counted_step
sys.argv = [script] + rest + ["--iters", "4", "--warmup", "1"]
with mode:
    runpy.run_path(script, run_name="__main__")
new, inplace, nodes = per_step[-1]
print(f"OPS new={new} inplace={inplace} nodes={nodes}", flush=True)
