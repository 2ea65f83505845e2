"""emolite: small, fast, offline emotion recognition from face, scene and voice.

    import emolite
    model = emolite.load_model()              # the packaged default model, no download
    result = model.analyze("clip.mp4")        # windows over time + an overall label
    print(result.label, result.confidence)
    model.predict(face=crops, audio=wave)     # arrays in, a Prediction out
"""

from .errors import EmoliteError
from .inference import EmotionModel, Prediction, load_model

__version__ = "0.1.0"


__all__ = ["load_model", "EmotionModel", "Prediction", "EmoliteError", "__version__"]
