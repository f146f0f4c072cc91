"""Training: the run's configuration (``config``), its data (``data``), the model and its phases
(``phases``), the epoch loop with checkpoints and exact resume (``loop``, ``state``), the end of a
run (``finish``), scale-out (``distribute``), the one model artifact (``artifact``), prediction
(``predict``) and the demo (``demo``).

Importing this package loads numpy only; Keras and TensorFlow load when a run starts.
"""

from .config import LR_SCHEDULES, TrainConfig
from .data import Part, TrainData, load_data
from .finish import TrainResult
from .loop import train
from .phases import build_and_compile, phases

__all__ = ["TrainConfig", "train", "TrainData", "Part", "TrainResult", "load_data", "build_and_compile", "phases",
           "LR_SCHEDULES"]
