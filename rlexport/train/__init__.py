"""``rlexport train``: PPO and A2C on Gymnasium environments with rlexport's losses.

Two engines update the same actor-critic: ``torch`` (eager loss + ``torch.optim``) and ``onnx``
(acting, GAE and the whole clip+Adam update in ONNX Runtime). Runs are resumable, log metrics,
plot a learning curve and end with exported, validated artifacts. See ``rlexport/train/README.md``.
"""

from .config import ALGOS, ENGINES, TrainConfig, make_config
from .demo import run_demo
from .evaluation import evaluate
from .loop import TrainError, TrainInterrupted, TrainResult, train

__all__ = [
    "ALGOS", "ENGINES", "TrainConfig", "make_config", "train", "TrainError", "TrainInterrupted", "TrainResult",
    "evaluate", "run_demo",
]
