"""Model adapters: one ``Model`` protocol over PyTorch, scikit-learn, ONNX and HTTP services."""

from modelshield.core.adapters.onnx import OnnxModel
from modelshield.core.adapters.remote import RemoteModel
from modelshield.core.adapters.sklearn import SklearnModel
from modelshield.core.model import TorchModel

__all__ = ["OnnxModel", "RemoteModel", "SklearnModel", "TorchModel"]
