"""Canonical emotion names, each dataset's label set, and explicit mappings between them.

Every dataset loader maps its raw labels onto canonical names here, so a model trained on
one label set can be evaluated or fine-tuned on another through `map_labels`.
"""

from __future__ import annotations

# The default model's label set (Ekman's six + neutral).
EMOTIONS: tuple[str, ...] = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
# Extra canonical names some datasets use; they have no counterpart in EMOTIONS.
EXTRA: tuple[str, ...] = ("calm", "boredom", "contempt")

# Raw label -> canonical name, per dataset. Canonical names are always lower case.
DATASET_LABELS: dict[str, dict[str, str]] = {
    "meld": {"anger": "anger", "disgust": "disgust", "fear": "fear", "joy": "happiness",
             "neutral": "neutral", "sadness": "sadness", "surprise": "surprise"},
    "cremad": {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happiness",
               "NEU": "neutral", "SAD": "sadness"},
    "ravdess": {"01": "neutral", "02": "calm", "03": "happiness", "04": "sadness",
                "05": "anger", "06": "fear", "07": "disgust", "08": "surprise"},
    "emodb": {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness",
              "T": "sadness", "N": "neutral"},
    "ckplus": {"anger": "anger", "contempt": "contempt", "disgust": "disgust", "fear": "fear",
               "happy": "happiness", "sadness": "sadness", "surprise": "surprise"},
    # The speech corpora of emolite.data.speech: their labels.csv spellings and, for nEMO and
    # TurEV-DB, the codes in their original file names.
    "nemo": {"anger": "anger", "fear": "fear", "happiness": "happiness", "neutral": "neutral",
             "sadness": "sadness", "surprised": "surprise", "surprise": "surprise"},
    "ased": {"neutral": "neutral", "fear": "fear", "happiness": "happiness", "sadness": "sadness",
             "anger": "anger"},
    "turev": {"anger": "anger", "kz": "anger", "calm": "calm", "sk": "calm", "happiness": "happiness",
              "mt": "happiness", "sadness": "sadness", "hl": "sadness"},
}

# The rule for pooling speech corpora with different label sets (one voice expert over all):
# calm -> neutral (RAVDESS's and TurEV-DB's calm is low-arousal, unmarked speech; TurEV-DB has
# no neutral, so its calm stands in for it); boredom -> left out (EmoDB alone has it);
# surprise and disgust are kept: a corpus lacking them simply adds no examples of them, and a
# held-out corpus is scored over the classes it has (splits.loco_folds).
POOLED: dict[str, str | None] = {"calm": "neutral", "boredom": None}

# Spelling variants seen in the wild, folded onto canonical names.
ALIASES: dict[str, str] = {
    "angry": "anger", "ang": "anger", "mad": "anger",
    "disgusted": "disgust", "dis": "disgust",
    "fearful": "fear", "afraid": "fear", "fea": "fear", "scared": "fear",
    "happy": "happiness", "joy": "happiness", "hap": "happiness", "happiness": "happiness",
    "neu": "neutral", "sad": "sadness", "surprised": "surprise", "sur": "surprise",
    "bored": "boredom",
}


def canonical(label: str) -> str:
    """Fold any spelling of an emotion ('Happy', 'joy', 'HAP') to its canonical name."""
    key = str(label).strip().lower()
    if key in EMOTIONS or key in EXTRA:
        return key
    return ALIASES.get(key, key)


def pool_label(label: str) -> str | None:
    """A canonical label under the pooling rule POOLED (None: left out of pooled training)."""
    return POOLED.get(label, label)


def dataset_classes(dataset: str) -> list[str]:
    """The canonical classes of a dataset, in a fixed (sorted) order."""
    return sorted(set(DATASET_LABELS[dataset].values()))


def map_labels(source: list[str], target: list[str]) -> dict[int, int]:
    """Index mapping from a source label set onto a target one, through canonical names.

    Classes with no counterpart are left out; `dropped_labels` names them.
    """
    tgt = {canonical(t): j for j, t in enumerate(target)}
    return {i: tgt[canonical(s)] for i, s in enumerate(source) if canonical(s) in tgt}


def dropped_labels(source: list[str], target: list[str]) -> list[str]:
    """Source classes that `map_labels` cannot carry over to the target set."""
    tgt = {canonical(t) for t in target}
    return [s for s in source if canonical(s) not in tgt]
