"""Communication hooks for :class:`loom.parallel.DistributedDataParallel`, as in torch's ``ddp_comm_hooks``.

Register one with ``ddp_model.register_comm_hook(state, hook)``: plain all-reduce, fp16 or bf16
compression, or PowerSGD low-rank compression with error feedback.
"""

from __future__ import annotations

from loom.parallel.comm_hooks._default import allreduce_hook, bf16_compress_hook, fp16_compress_hook
from loom.parallel.comm_hooks._powersgd import PowerSGDState, powerSGD_hook

__all__ = ["PowerSGDState", "allreduce_hook", "bf16_compress_hook", "fp16_compress_hook", "powerSGD_hook"]

for _obj in (PowerSGDState, allreduce_hook, bf16_compress_hook, fp16_compress_hook, powerSGD_hook):
    _obj.__module__ = __name__
del _obj
