"""Live training: GradMonitor (per-step gradient norms on the device, correct under DDP and FSDP2)
and callbacks for Lightning and the transformers Trainer (monitor.callbacks)."""
from gradcheck_tool.monitor.core import GradMonitor
from gradcheck_tool.monitor.judge import StepRecord

__all__ = ["GradMonitor", "StepRecord"]
