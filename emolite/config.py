"""Training config: a TOML file over built-in defaults, plus `--set a.b=value` overrides.

    cfg = load_config("configs/meld.toml", ["model.fusion=attention", "optim.lr=3e-4"])
    cfg["model"]["fusion"]  -> "attention"

The config is a plain nested dict (JSON-able, so it can go into checkpoints as is). Every key
must exist in `DEFAULTS`: a typo is an error that lists the valid keys, not a silently ignored
setting. Override values are TOML literals (`3e-4`, `true`, `[1, 2]`, `"x"`); a bare word that
is not valid TOML is taken as a string (`model.fusion=attention`). Free-form tables (whose
default is `{}`, e.g. `model.extra`) accept any keys, for plugins.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import sys
from pathlib import Path

from .augment import AUGMENT_DEFAULTS
from .errors import EmoliteError
from .arch import TABLE_DEFAULTS
from .inputs import FRAMES, SECONDS
from .spec import MAX_FRAMES
from .media import MAX_WINDOW

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULTS: dict = {
    "data": {
        "cache_dir": "",            # preprocessed cache (emolite preprocess -o DIR)
        "dataset": "",              # keep only this dataset's entries; its label set if `classes` is empty
        "classes": [],              # explicit class list; default: labels present in the train split
        "train_split": "train",
        "val_split": "dev",          # empty/missing: 10 % of train speakers are held out
        "test_split": "test",        # evaluated with the best model at the end ("" = skip)
        "targets": [],               # regression: entry-meta keys, e.g. ["valence", "arousal"]
        "frames": FRAMES,            # T frames sampled per model input
        "audio_seconds": SECONDS,    # audio per model input (the clip span a training sample covers)
        "batch_size": 16,
        "num_workers": 2,
        "sampler": "shuffle",        # shuffle | weighted (inverse class frequency)
        "max_items": 0,              # >0: use only the first N entries per split (debugging)
    },
    "model": {**copy.deepcopy(TABLE_DEFAULTS),   # the flat table; emolite.arch.from_table types it
              "init": "",            # transfer: checkpoint whose encoders/temporal/fusion weights to load
              "extra": {}},          # free-form options for plugin models
    "loss": {"name": "ce", "gamma": 2.0, "label_smoothing": 0.0,
             "extra": {}},                   # free-form options passed to a plugin loss
    "metrics": {"names": ["acc", "f1_weighted", "f1_macro", "uar"]},
    "optim": {
        "lr": 1e-3, "weight_decay": 0.01, "epochs": 30, "max_steps": -1,
        "warmup_steps": 100, "scheduler": "cosine",   # cosine | constant
        "grad_clip": 1.0,
        "patience": 6,                                # early stopping, in validation rounds
        "monitor": "val/f1_weighted", "mode": "max",
        "keep": "best",                               # best (by monitor) | last: the weights saved as best.pt
    },
    "augment": copy.deepcopy(AUGMENT_DEFAULTS),   # see emolite/augment.py
    "trainer": {
        "accelerator": "auto", "devices": "auto", "num_nodes": 1, "strategy": "auto",
        "precision": "32-true",                        # 16-mixed | bf16-mixed on GPU
        "seed": 0, "out_dir": "runs", "name": "run",   # run dir = out_dir/name
        "ckpt_every_n_steps": 200,                     # mid-epoch "last.ckpt" for exact resume
        "log_every_n_steps": 10, "progress_bar": True, "deterministic": False,
    },
    "debug": {
        "kill_after_steps": 0,       # tests: SIGKILL self at this global step (after its checkpoint)
        "limit_train_batches": 0,    # >0: cap batches per epoch
        "limit_val_batches": 0,
    },
    "plugins": [],                   # modules imported before training (they register things)
}

ANY_TYPE = {("trainer", "devices"), ("trainer", "strategy")}   # int, list or string


def _type_ok(default, value) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


class _FreeDict(dict):
    """Marks a free-form table (any keys allowed)."""


def _merge(base: dict, new: dict, where: str = "") -> None:
    """Recursively merge `new` into `base`, refusing keys the defaults don't have."""
    for k, v in new.items():
        path = f"{where}{k}"
        if k not in base:
            valid = ", ".join(sorted(base))
            section = f" in [{where[:-1]}]" if where else ""
            raise EmoliteError(f"unknown config key '{path}'; valid keys{section}: {valid}")
        if isinstance(base[k], dict):
            if not isinstance(v, dict):
                raise EmoliteError(f"config key '{path}' is a table; set its fields, e.g. {path}.name=...")
            if isinstance(base[k], _FreeDict):
                base[k].update(v)
            else:
                _merge(base[k], v, path + ".")
            continue
        if (where[:-1], k) not in ANY_TYPE and not _type_ok(base[k], v):
            raise EmoliteError(f"config key '{path}' expects {type(base[k]).__name__}, got {v!r}")
        base[k] = float(v) if isinstance(base[k], float) else v


def parse_value(text: str):
    """A TOML literal, or the bare text as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()


def parse_override(item: str) -> dict:
    """'a.b.c=value' -> {'a': {'b': {'c': value}}}."""
    if "=" not in item:
        raise EmoliteError(f"override '{item}' must look like section.key=value")
    key, text = item.split("=", 1)
    parts = [p.strip() for p in key.strip().split(".") if p.strip()]
    if not parts:
        raise EmoliteError(f"override '{item}' has no key")
    out: dict = {}
    d = out
    for p in parts[:-1]:
        d = d.setdefault(p, {})
    d[parts[-1]] = parse_value(text)
    return out


def _plain(d):
    if isinstance(d, dict):
        return {k: _plain(v) for k, v in d.items()}
    return d


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> dict:
    """Defaults <- TOML file <- overrides. Relative cache/out/init paths in the file are
    resolved against the current directory (as typed on the command line)."""
    cfg = copy.deepcopy(DEFAULTS)
    for sec in cfg.values():
        for k, v in (sec.items() if isinstance(sec, dict) else ()):
            if v == {}:
                sec[k] = _FreeDict()
    if path:
        p = Path(path)
        if not p.exists():
            raise EmoliteError("config file not found", p)
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as e:
            raise EmoliteError(f"bad TOML: {e}", p) from None
        _merge(cfg, data)
        if cfg["trainer"]["name"] == "run":
            cfg["trainer"]["name"] = p.stem
    for item in overrides or []:
        _merge(cfg, parse_override(item))
    check_config(cfg)
    return _plain(cfg)


# (section, key): (low, high, low excluded): every number a run would otherwise take as it is, only
# to fail deep inside torch (lr=nan), or to mean something else (epochs=-1 is Lightning's "no limit").
RANGES = {
    ("data", "frames"): (1, MAX_FRAMES, False), ("data", "audio_seconds"): (0, MAX_WINDOW, True),
    ("data", "batch_size"): (1, 65536, False), ("data", "num_workers"): (0, 256, False),
    ("data", "max_items"): (0, None, False),
    ("optim", "lr"): (0, 10.0, True), ("optim", "weight_decay"): (0, 10.0, False),
    ("optim", "epochs"): (1, 100_000, False), ("optim", "warmup_steps"): (0, None, False),
    ("optim", "grad_clip"): (0, None, False), ("optim", "patience"): (0, None, False),
    ("loss", "gamma"): (0, 100.0, False), ("loss", "label_smoothing"): (0, 0.99, False),
    ("model", "dropout"): (0, 0.99, False), ("model", "modality_dropout"): (0, 0.99, False),
    ("augment", "prob"): (0, 1.0, False), ("augment", "mixup"): (0, 100.0, False),
    ("trainer", "num_nodes"): (1, 4096, False), ("trainer", "ckpt_every_n_steps"): (1, None, False),
    ("trainer", "log_every_n_steps"): (1, None, False),
    ("debug", "kill_after_steps"): (0, None, False), ("debug", "limit_train_batches"): (0, None, False),
    ("debug", "limit_val_batches"): (0, None, False),
}


def check_config(cfg: dict) -> None:
    """Refuse values outside their choices or ranges, with one line naming the key."""
    from .options import number

    choices = {("data", "sampler"): ("shuffle", "weighted"), ("optim", "scheduler"): ("cosine", "constant"),
               ("optim", "mode"): ("max", "min"), ("optim", "keep"): ("best", "last"), ("augment", "pitch_method"): ("resample", "librosa")}
    for (s, k), ok in choices.items():
        if cfg[s][k] not in ok:
            raise EmoliteError(f"config {s}.{k}='{cfg[s][k]}'; choose one of: {', '.join(ok)}")
    for (s, k), (lo, hi, open_lo) in RANGES.items():
        number(f"config {s}.{k}", cfg[s][k], lo, hi, integer=isinstance(DEFAULTS[s][k], int), lo_open=open_lo)
    if cfg["optim"]["max_steps"] != -1:
        number("config optim.max_steps (-1: no limit)", cfg["optim"]["max_steps"], 1, None, integer=True)


def load_plugins(modules: list[str]) -> None:
    """Import user modules that register datasets/models/losses/metrics (`--plugin mod`)."""
    for name in modules or []:
        try:
            if name.endswith(".py") and Path(name).exists():
                spec = importlib.util.spec_from_file_location(Path(name).stem, name)
                mod = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(mod)
            else:
                importlib.import_module(name)
        except ImportError as e:
            raise EmoliteError(f"cannot import plugin '{name}': {e}") from None


def dump_toml(cfg: dict) -> str:
    """The config as TOML (for the run dir; re-loadable with load_config)."""
    import json

    def lit(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(lit(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(k)} = {lit(x)}" for k, x in v.items()) + "}"
        return json.dumps(str(v))

    lines = [f"plugins = {lit(cfg.get('plugins', []))}"]
    for sec, vals in cfg.items():
        if not isinstance(vals, dict):
            continue
        lines.append(f"\n[{sec}]")
        lines += [f"{k} = {lit(v)}" for k, v in vals.items()]
    return "\n".join(lines) + "\n"
