"""Model watermarking: prove a model is yours with a secret key.

``WeightWatermark`` hides a key-derived message in a layer's weights (white-box, Uchida et al. 2017);
``TriggerSetWatermark`` teaches the model key-derived labels for key-derived inputs (black-box, Adi et
al. 2018). Both verify with an exact binomial test held to a stated false-positive rate.
"""

from modelshield.integrity.watermark.keys import generate_key, load_key
from modelshield.integrity.watermark.stats import DEFAULT_FPR, NullCalibration, WatermarkVerdict, calibrate
from modelshield.integrity.watermark.training import accuracy, fine_tune, magnitude_prune
from modelshield.integrity.watermark.triggers import TriggerSetWatermark
from modelshield.integrity.watermark.weights import WeightWatermark

__all__ = [
    "DEFAULT_FPR",
    "NullCalibration",
    "TriggerSetWatermark",
    "WatermarkVerdict",
    "WeightWatermark",
    "accuracy",
    "calibrate",
    "fine_tune",
    "generate_key",
    "load_key",
    "magnitude_prune",
]
